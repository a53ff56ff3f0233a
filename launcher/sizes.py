"""Memory sizes as people write them ("8GiB", "7500MiB", "8G") <-> MiB floats.

A size needs its unit: a bare ``8`` could be 8 MiB or 8 GiB, and guessing wrong runs a study on the wrong card.
For the same reason decimal units are refused: a card sold as "8 GB" has 8 GiB, and nvidia-smi's "MB" columns
are MiB, but 8 GB in bytes is 7,629 MiB. Taken at its word, ``--gpu-memory 8GB`` would run the study on a card
7% smaller than the user's; taken as binary, ``7.5GB`` from a spec sheet would be 7% larger. Only the user knows.
"""

from __future__ import annotations

import math
import re

_UNITS = {
    "mib": 1.0,
    "m": 1.0,
    "gib": 1024.0,
    "g": 1024.0,
    "tib": 1024.0 * 1024.0,
    "t": 1024.0 * 1024.0,
    "kib": 1.0 / 1024.0,
    "k": 1.0 / 1024.0,
}
_DECIMAL = {"kb": 1e3 / 2**20, "mb": 1e6 / 2**20, "gb": 1e9 / 2**20, "tb": 1e12 / 2**20}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
MIN_MIB = 1.0
MAX_MIB = 16.0 * 1024 * 1024  # 16 TiB: beyond any GPU or host memory budget
_FORMS = "use a number with a binary unit, e.g. 8GiB or 7500MiB"


def parse_size_mib(text: str | float | int) -> float:
    """Parse a size into MiB. Raises ValueError saying what is wrong and the accepted forms when it cannot."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"not a memory size: {text!r} ({_FORMS})")
    if isinstance(text, (int, float)):
        raise ValueError(f"{text!r} has no unit: is it MiB or GiB? ({_FORMS})")
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a memory size: {text!r} ({_FORMS})")
    number, unit = match.group(1), match.group(2).lower()
    if not unit:
        raise ValueError(f"{text!r} has no unit: is it MiB or GiB? ({_FORMS})")
    if unit in _DECIMAL:
        binary, decimal = float(number) * _UNITS[unit[0]], float(number) * _DECIMAL[unit]
        raise ValueError(
            f"{text!r} is ambiguous: in binary units (how GPU memory is sold and how nvidia-smi counts "
            f"it) it is {format_mib(binary)}, in powers of ten {format_mib(decimal)}. Write "
            f"{number}{match.group(2)[0].upper()}iB for the first or {round(decimal)}MiB for the second"
        )
    if unit not in _UNITS:
        raise ValueError(f"{text!r}: unknown unit {match.group(2)!r} (KiB, MiB, GiB or TiB; K, M, G or T alike)")
    mib = float(number) * _UNITS[unit]
    if not math.isfinite(mib) or not MIN_MIB <= mib <= MAX_MIB:
        raise ValueError(
            f"{text!r} is {'not finite' if not math.isfinite(mib) else format_mib(mib)}: a memory size "
            f"must be from 1 MiB to 16 TiB"
        )
    return mib


def format_mib(mib: float | None) -> str:
    if mib is None:
        return "-"
    if 0 < mib < 1:
        return f"{mib:.3g} MiB"
    return f"{mib:,.0f} MiB"
