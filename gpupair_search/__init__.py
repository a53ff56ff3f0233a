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
