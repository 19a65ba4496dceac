"""Serial port enumeration: the host's ttys with their USB identity, plus emulated modems' ports.

Real ports come from pyserial's `comports()` and the /dev/serial/by-id links udev makes for them.
Emulated modems (hil/) describe their pseudo-terminals in JSON inventory files named, separated by
os.pathsep, in $CALLGATE_PORT_INVENTORY; each file holds a list of objects with the PortInfo keys.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

BY_ID_DIR = Path("/dev/serial/by-id")
INVENTORY_ENV = "CALLGATE_PORT_INVENTORY"
INVENTORY_KEYS = ("device", "by_id", "vid", "pid", "serial_number", "interface", "location",
                  "manufacturer", "product", "role")
_HEX16 = re.compile(r"[0-9a-fA-F]{4}")


class InventoryError(ValueError):
    """A port inventory file is unreadable or malformed; the message names the file and JSON path."""


@dataclass(frozen=True)
class PortInfo:
    device: str                      # /dev/ttyUSB2, /dev/pts/7
    by_id: str | None = None         # the /dev/serial/by-id link pointing at it
    vid: str | None = None           # four lower-case hex digits, "1e0e"
    pid: str | None = None
    serial_number: str | None = None
    interface: int | None = None     # USB interface number (bInterfaceNumber)
    location: str | None = None      # USB path, "1-1.2:1.2"
    manufacturer: str | None = None
    product: str | None = None
    role: str | None = None          # hint from an emulator inventory: "at", "audio", ...

    @property
    def usb_id(self) -> str | None:
        return f"{self.vid}:{self.pid}" if self.vid and self.pid else None

    @property
    def device_key(self) -> tuple:
        """Identifies the physical USB device: equal for all ttys (interfaces) of one modem."""
        if self.vid is None and self.location is None:
            return ("tty", self.device)
        base = self.location.split(":")[0] if self.location else None
        return ("usb", self.vid, self.pid, self.serial_number, base)

    def names(self) -> set[str]:
        """Every name a user may give for this port."""
        out = {self.device}
        if self.by_id:
            out |= {self.by_id, os.path.basename(self.by_id)}
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def list_ports(*, by_id_dir: Path = BY_ID_DIR, inventories: list[str] | None = None) -> list[PortInfo]:
    """The host's serial ports, then the emulated ones (an inventory entry replaces a host port
    with the same device). inventories defaults to the files in $CALLGATE_PORT_INVENTORY.
    Raises InventoryError for a bad inventory file."""
    links = by_id_links(by_id_dir)
    ports: dict[str, PortInfo] = {}
    for info in _comports():
        device = info.device
        ports[device] = PortInfo(
            device=device, by_id=links.get(os.path.realpath(device)),
            vid=None if info.vid is None else f"{info.vid:04x}",
            pid=None if info.pid is None else f"{info.pid:04x}",
            serial_number=info.serial_number or None, interface=_interface_number(info),
            location=info.location or None, manufacturer=info.manufacturer or None,
            product=info.product or None)
    if inventories is None:
        inventories = [p for p in os.environ.get(INVENTORY_ENV, "").split(os.pathsep) if p]
    for path in inventories:
        for port in load_inventory(path):
            ports[port.device] = port
    return list(ports.values())


def find_port(name: str, ports: list[PortInfo], *, by_id_dir: Path = BY_ID_DIR) -> PortInfo | None:
    """The port a user means by `name`: a device path, a by-id name (with or without its folder)
    or a path to a link; a path that exists but is not listed gets a bare PortInfo. None if missing."""
    for port in ports:
        if name in port.names():
            return port
    candidates = [name] if os.path.isabs(name) or os.sep in name else [name, str(by_id_dir / name)]
    for path in candidates:
        if os.path.exists(path):
            real = os.path.realpath(path)
            for port in ports:
                if os.path.realpath(port.device) == real:
                    return port
            return PortInfo(device=path, by_id=path if os.path.islink(path) else None)
    return None


def by_id_links(directory: Path = BY_ID_DIR) -> dict[str, str]:
    """{real device path: by-id link path} for the links in `directory` (empty if there is none)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return {}
    return {os.path.realpath(e.path): e.path for e in entries if e.is_symlink()}


def load_inventory(path: str | os.PathLike) -> list[PortInfo]:
    """The ports an emulator inventory file describes; InventoryError names the file and JSON path."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read port inventory: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise InventoryError(f"{path}: $: expected a list of port objects, got {_kind(data)}")
    return [_port_from_json(path, i, item) for i, item in enumerate(data)]


def _port_from_json(path, index: int, item) -> PortInfo:
    where = f"$[{index}]"

    def err(key: str, message: str) -> InventoryError:
        return InventoryError(f"{path}: {where}.{key}: {message}")

    if not isinstance(item, dict):
        raise InventoryError(f"{path}: {where}: expected an object with keys {', '.join(INVENTORY_KEYS)}, "
                             f"got {_kind(item)}")
    for key in item:
        if key not in INVENTORY_KEYS:
            raise err(key, f"unknown key (known: {', '.join(INVENTORY_KEYS)})")
    values: dict = {}
    for key in INVENTORY_KEYS:
        value = item.get(key)
        if key == "device":
            if not isinstance(value, str) or not value:
                raise err(key, "missing" if value is None else f"expected a non-empty string, got {_kind(value)}")
        elif key in ("vid", "pid"):
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF:
                value = f"{value:04x}"
            elif isinstance(value, str) and _HEX16.fullmatch(value):
                value = value.lower()
            elif value is not None:
                raise err(key, f"expected four hex digits such as \"1e0e\" or null, got {json.dumps(value)}")
        elif key == "interface":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise err(key, f"expected a USB interface number (integer >= 0) or null, got {json.dumps(value)}")
        elif value is not None and not isinstance(value, str):
            raise err(key, f"expected a string or null, got {_kind(value)}")
        values[key] = value
    return PortInfo(**values)


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _comports():
    from serial.tools import list_ports as serial_list_ports
    return serial_list_ports.comports()


def _interface_number(info) -> int | None:
    """bInterfaceNumber from sysfs, else the interface part of the location ("1-1.2:1.4" -> 4)."""
    iface_path = getattr(info, "usb_interface_path", None)
    if iface_path:
        try:
            return int(Path(iface_path, "bInterfaceNumber").read_text().strip(), 16)
        except (OSError, ValueError):
            pass
    location = info.location or ""
    if ":" in location:
        tail = location.rsplit(".", 1)[-1]
        if tail.isdigit():
            return int(tail)
    return None
