"""gpupair-search: find which training jobs can share one GPU, and at what batch sizes.

One import package. Its subpackages live in the repository's top-level folders, mapped by
``[tool.setuptools] package-dir`` in ``pyproject.toml``:

- :mod:`gpupair_search.settings`  (``settings/``): JSON data, the built-in models file, memory profiles;
- :mod:`gpupair_search.launcher`  (``launcher/``): one pair on one device, measured and classified;
- :mod:`gpupair_search.search`    (``search/``): the study on Optuna, planning, views, the CLI;
- :mod:`gpupair_search.studies`   (``studies/``): named study definitions;
- :mod:`gpupair_search.workloads` (``workloads/``): the built-in training jobs.
"""

__version__ = "0.1.0"

# Run from a source checkout without installing (``PYTHONPATH=. python -m gpupair_search.search.cli.app``):
# the subpackages are this folder's siblings there, so the package also looks for them one level up, as
# pyproject.toml's package-dir maps them. An installed copy has them inside this folder and skips this.
from pathlib import Path as _Path

_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "search" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # type: ignore[name-defined]
del _Path, _checkout
