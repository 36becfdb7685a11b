"""Places a bundle runs: one module per kind of device (local.py: this machine; emulated.py: the emulated
aarch64 CPU; ssh.py: a device over SSH), each with the verbs of base.Device. Only this package knows which kind
a device is."""

from __future__ import annotations

from .base import Device, of_platform, parse_destination, platform_of, report_of, run_bundle
from .local import LocalDevice

__all__ = ["Device", "LocalDevice", "emulated_device", "of_platform", "open_device", "parse_destination", "platform_of", "report_of", "run_bundle"]


def open_device(destination: str | None, *, timeout: float, accept_new_host_key: bool = False) -> Device:
    """The device ``destination`` names (None: this machine), to use as a context manager (which connects);
    ``timeout``: the seconds any one step there may take."""
    if destination is None:
        return LocalDevice()
    from .ssh import SshDevice  # asyncssh only when a device is named

    return SshDevice(parse_destination(destination), timeout=timeout, accept_new_host_key=accept_new_host_key)


def emulated_device(cpu: str, arm_cache=None) -> Device:
    """The emulated aarch64 CPU model ``cpu`` as a device (for correctness: nothing times on it)."""
    from .emulated import EmulatedDevice

    return EmulatedDevice(cpu, arm_cache)
