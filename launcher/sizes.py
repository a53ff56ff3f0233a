"""Memory sizes as people write them ("8GiB", "7500MiB", "7.5GB") <-> MiB floats."""
from __future__ import annotations

import re

_UNITS = {
    "": 1.0,  # a bare number is MiB, the unit nvidia-smi prints
    "mib": 1.0,
    "m": 1.0,
    "gib": 1024.0,
    "g": 1024.0,
    "tib": 1024.0 * 1024.0,
    "kib": 1.0 / 1024.0,
    "mb": 1e6 / 2**20,
    "gb": 1e9 / 2**20,
    "kb": 1e3 / 2**20,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size_mib(text: str | float | int) -> float:
    """Parse a size into MiB. Raises ValueError with the accepted forms when it cannot."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _SIZE.match(str(text))
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"not a memory size: {text!r} (use e.g. 8GiB, 7500MiB, 7.5GB; a bare number is MiB)")
        value, unit = float(match.group(1)), match.group(2).lower()
    if value <= 0:
        raise ValueError(f"memory size must be positive: {text!r}")
    return value * _UNITS[unit]


def format_mib(mib: float | None) -> str:
    if mib is None:
        return "-"
    return f"{mib:,.0f} MiB"
