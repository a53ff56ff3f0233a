"""Built-in synthetic reference training workloads (see workloads/common.py)."""
