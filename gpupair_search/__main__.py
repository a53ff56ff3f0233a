"""``python -m gpupair_search``: the same command line as the ``gpupair-search`` script, for environments
where the script is not on PATH (a venv not activated, ``pip install --user`` without ~/.local/bin)."""

import sys

from gpupair_search.search.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
