"""The emulated USB device's ttys: pseudo-terminals that vanish and come back under new names, their
USB identity (VID:PID, interface number, serial), and udev-style /dev/serial/by-id symlinks."""

from __future__ import annotations

import dataclasses
import os
import re
import tty

# udev (`ID_SERIAL`) keeps these characters in by-id names and turns every other one into "_".
_BY_ID_UNSAFE = re.compile(r"[^0-9A-Za-z#+\-.:=@_]")


@dataclasses.dataclass(frozen=True)
class UsbIdentity:
    """What the USB device descriptor says, the same before and after a replug."""

    vid: str
    pid: str
    manufacturer: str
    product: str
    serial_number: str
    usb_path: str           # bus-port path as in sysfs, e.g. "1-1.3"


@dataclasses.dataclass(frozen=True)
class PortSpec:
    """One tty of the device: its role for the host and its USB interface number."""

    role: str               # "at" | "modem" | "audio" | "nmea" | "diag"
    interface: int


def by_id_name(usb: UsbIdentity, interface: int, acm: bool = False) -> str:
    """The /dev/serial/by-id basename udev gives a USB serial interface; acm: a CDC-ACM tty
    (ttyACM*), whose name has no -portN suffix."""
    parts = [usb.manufacturer, usb.product] + ([usb.serial_number] if usb.serial_number else [])
    serial = "_".join(_BY_ID_UNSAFE.sub("_", part) for part in parts)
    return f"usb-{serial}-if{interface:02d}" + ("" if acm else "-port0")


def inventory_row(usb: UsbIdentity, spec: PortSpec, device: str | None, by_id: str | None) -> dict:
    """One tty as a USB serial port scan lists it (the rows of a port inventory file)."""
    return {
        "device": device, "by_id": by_id,
        "vid": usb.vid, "pid": usb.pid, "serial_number": usb.serial_number,
        "interface": spec.interface, "location": f"{usb.usb_path}:1.{spec.interface}",
        "manufacturer": usb.manufacturer, "product": usb.product, "role": spec.role,
    }


class Pty:
    """Master side of one pseudo-terminal; open() after close() always yields a new /dev/pts name.

    The emulator keeps the slave open too, so a host that closes and reopens the port finds it
    unchanged, and so the master never sees EIO while the device is "plugged in".
    """

    def __init__(self) -> None:
        self.master: int | None = None
        self._slave: int | None = None
        self.name: str | None = None
        self._used: set[str] = set()

    @property
    def is_open(self) -> bool:
        return self.master is not None

    def open(self) -> str:
        if self.master is not None:
            return self.name or ""
        held: list[tuple[int, int]] = []
        try:
            while True:
                master, slave = os.openpty()
                name = os.ttyname(slave)
                if name not in self._used:
                    break
                held.append((master, slave))     # a freed number came back: take another one
        finally:
            for fds in held:
                for fd in fds:
                    os.close(fd)
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self._slave, self.name = master, slave, name
        self._used.add(name)
        return name

    def close(self) -> None:
        for fd in (self.master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self._slave = None

    def read(self, size: int = 65536) -> bytes:
        """Whatever the host wrote (b"" when nothing is waiting or the pty is closed)."""
        if self.master is None:
            return b""
        try:
            return os.read(self.master, size)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return b""

    def write(self, data: bytes) -> int:
        """Bytes accepted by the pty (0 when its buffer is full or it is closed)."""
        if self.master is None or not data:
            return 0
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0
        except OSError:
            return len(data)     # the host side is gone: drop the bytes like a USB endpoint would


class ByIdLinks:
    """Symlinks named like /dev/serial/by-id entries in a directory of the caller's choice."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def point(self, name: str, target: str) -> str:
        """Create or repoint one link atomically; returns its path."""
        link = self.path(name)
        tmp = f"{link}.tmp{os.getpid()}"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp)
        os.replace(tmp, link)
        return link

    def remove(self, name: str) -> None:
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            pass
