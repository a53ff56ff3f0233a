"""Devices behind one interface: what a job's memory is, what the device draws, who else is on it."""

from gpupair_search.launcher.devices.base import Device, DeviceReading, DeviceRequest, ForeignProcess, NoDeviceError

__all__ = ["Device", "DeviceReading", "DeviceRequest", "ForeignProcess", "NoDeviceError", "open_device"]


def open_device(choice: str, request: DeviceRequest | None = None) -> Device:
    """See :func:`gpupair_search.launcher.devices.factory.open_device`."""
    from gpupair_search.launcher.devices.factory import open_device as _open

    return _open(choice, request)
