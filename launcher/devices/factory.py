"""Turn ``--device`` into a :class:`Device`: every device class of this package names its own choice.

The factory imports the package's modules and asks each :class:`Device` subclass whether ``--device``
matches its ``choice``; so a new kind of device is one module in ``launcher/devices/`` and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache
from pathlib import Path

from gpupair_search.launcher.devices.base import Device, DeviceRequest, NoDeviceError
from gpupair_search.launcher.spec import StudyKind


@lru_cache(maxsize=1)
def device_classes() -> tuple[type[Device], ...]:
    """Every class of the package that opens a ``--device`` choice."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{package}.{module.name}")
    found: list[type[Device]] = []
    stack = list(Device.__subclasses__())
    while stack:
        cls = stack.pop(0)
        stack.extend(cls.__subclasses__())
        if cls.__dict__.get("choice") is not None:
            found.append(cls)
    return tuple(found)


def describe_choices() -> str:
    return "\n".join(f"  --device {shown(cls.choice):<8} {cls.choice_help}" for cls in device_classes())


def _match(choice: str) -> tuple[type[Device], re.Match[str]]:
    for cls in device_classes():
        match = re.fullmatch(cls.choice, choice)
        if match:
            return cls, match
    raise NoDeviceError(f"unknown device {choice!r}. Choices:\n" + describe_choices())


def study_kind(choice: str) -> StudyKind:
    """What a study measured on ``choice`` is, before the device is opened."""
    return _match(choice)[0].study_kind


def open_device(choice: str, request: DeviceRequest | None = None) -> Device:
    """Open the device named by ``choice`` (``auto``, ``cuda:N``, ``cpu``, ``sim``)."""
    cls, match = _match(choice)
    return cls.open(match, request or DeviceRequest())


def shown(pattern: str) -> str:
    """A choice as ``--help`` writes it: ``cuda:N`` for the pattern."""
    return pattern.replace(r"auto|cuda:(\d+)", "cuda:N").replace(r"(\d+)", "N")
