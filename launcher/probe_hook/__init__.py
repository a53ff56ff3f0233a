"""The folder the runner puts first on a probed job's PYTHONPATH: its ``sitecustomize`` is the probe (see there)."""
