"""Which physical GPU ``cuda:N`` is, when ``CUDA_VISIBLE_DEVICES`` narrows what this process may use.

CUDA (and so PyTorch) numbers only the visible devices: with ``CUDA_VISIBLE_DEVICES=2,3``, ``cuda:0`` is
physical GPU 2. NVML ignores the variable and numbers every GPU of the host, so opening NVML device N for
``cuda:N`` would measure, and start jobs on, a GPU that Slurm (or the user) gave to someone else. This
module maps ``cuda:N`` to the N-th visible entry, then to the NVML device it names.

An entry is an index (NVML's numbering, which is the PCI bus order Slurm's gres.conf and nvidia-smi use)
or a GPU UUID (``GPU-8f2a...``, also a unique prefix of one, as CUDA accepts).
"""

from __future__ import annotations

from gpupair_search.launcher.devices.base import NoDeviceError

VARIABLE = "CUDA_VISIBLE_DEVICES"


def visible_gpu(n: int, visible: str | None) -> int | str:
    """The physical GPU of ``cuda:n``: an NVML index (int) or a UUID or UUID prefix (str).

    ``visible`` is the value of ``CUDA_VISIBLE_DEVICES`` (None when unset: every GPU, ``cuda:n`` is GPU n).
    """
    if visible is None:
        return n
    entries = [e.strip() for e in visible.split(",")] if visible.strip() else []
    if entries and entries[0] in ("-1", "NoDevFiles"):  # conventions for "no GPU at all"
        entries = []
    parsed = [_entry(e, visible) for e in entries]
    if n >= len(parsed):
        shown = ", ".join(f"cuda:{i}" for i in range(len(parsed))) or "none"
        raise NoDeviceError(
            f"cuda:{n} is not visible to this process: {VARIABLE}={visible!r} makes "
            f"{len(parsed)} GPU(s) visible ({shown}). Use one of those, or unset {VARIABLE}; "
            "under Slurm, each array task's GPU is cuda:0."
        )
    return parsed[n]


def _entry(entry: str, visible: str) -> int | str:
    if entry.isdigit():
        return int(entry)
    if entry.startswith("MIG-"):
        raise NoDeviceError(
            f"{VARIABLE}={visible!r} names a MIG instance ({entry}): NVML cannot tell a "
            "process's memory on a MIG instance, so gpupair-search cannot measure there. "
            "Use a whole GPU."
        )
    if entry.startswith("GPU-") and len(entry) > 4:
        return entry
    raise NoDeviceError(
        f"{VARIABLE}={visible!r}: entry {entry!r} is neither a GPU index nor a GPU UUID "
        "(GPU-...); fix or unset the variable."
    )


def match_uuid(ref: str, uuids: list[str]) -> int:
    """The position in ``uuids`` (NVML's order) of the one UUID equal to or starting with ``ref``."""
    exact = [i for i, u in enumerate(uuids) if u == ref]
    found = exact or [i for i, u in enumerate(uuids) if u.startswith(ref)]
    if len(found) != 1:
        what = "no GPU of this host has" if not found else f"{len(found)} GPUs of this host match"
        raise NoDeviceError(f"{VARIABLE} names {ref}, but {what} that UUID (nvidia-smi -L lists them).")
    return found[0]


def nvml_index(n: int, visible: str | None) -> int:
    """The NVML index of ``cuda:n`` on this host (needs NVML initialised, see :mod:`nvidia`)."""
    import pynvml

    ref = visible_gpu(n, visible)
    count = pynvml.nvmlDeviceGetCount()
    if isinstance(ref, int):
        if ref >= count:
            raise NoDeviceError(
                f"{VARIABLE}={visible!r} makes cuda:{n} GPU {ref}, but this host has {count} NVIDIA GPU(s)."
            )
        return ref
    uuids = [as_text(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
    return match_uuid(ref, uuids)


def as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value  # older nvidia-ml-py returns bytes
