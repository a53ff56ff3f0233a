"""Regenerate settings/matrix.json from settings/models.json: ``python -m gpupair_search.studies.write_matrix``.

``--check`` only compares, and exits 1 when the shipped file is out of date. A module of its own, so that
``python -m`` does not run a module the package has already imported (studies/matrix.py is, for STUDIES).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gpupair_search.studies.matrix import STUDY, bundled_registry, matrix_settings, render


def main(argv: list[str]) -> int:
    text = render(matrix_settings(bundled_registry()))
    target = Path(STUDY.settings)
    if "--check" in argv:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is out of date: run python -m gpupair_search.studies.write_matrix", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
