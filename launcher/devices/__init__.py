"""Devices behind one interface: what a job's memory is, what the device draws, who else is on it."""

from gpupair_search.launcher.devices.base import Device, DeviceReading, DeviceRequest, ForeignProcess, NoDeviceError
from gpupair_search.launcher.devices.factory import open_device

__all__ = ["Device", "DeviceReading", "DeviceRequest", "ForeignProcess", "NoDeviceError", "open_device"]
