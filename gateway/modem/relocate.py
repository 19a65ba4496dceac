"""Finding a line's modem again after it re-enumerated under new /dev names (a reset, a USB hiccup, a
replug into another socket): match its USB serial number, else ask each candidate port for its IMEI.
Ports that other lines use are never opened.
"""

from __future__ import annotations

import asyncio
import logging
import os

from gateway.at.errors import AtError
from gateway.at.session import AtSession
from gateway.modem.profile import Profile
from gateway.transport.serial_port import open_serial

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.5


def _device_key(p) -> tuple:
    location = (p.location or "").split(":")[0]
    return (p.vid, p.pid, p.serial_number, location)


def _pair(group: list, profile: Profile) -> tuple[str | None, str | None]:
    """The AT and audio ports of one USB device by the profile's interface numbers."""
    for match in profile.usb:
        if group and (group[0].vid or "").lower() == match.vid and (group[0].pid or "").lower() == match.pid:
            at = next((p.device for p in group if p.interface == match.at_interface), None)
            audio = next((p.device for p in group if p.interface == match.audio_interface), None)
            return at, audio
    roles = {getattr(p, "role", None): p.device for p in group}
    return roles.get("at") or roles.get("modem"), roles.get("audio")


def usb_serial_of(path: str) -> str | None:
    """The USB serial number of the device a port belongs to (None for a port that is not USB or unlisted)."""
    from gateway.modem.ports import list_ports
    real = os.path.realpath(path)
    try:
        ports = list_ports()
    except Exception as exc:        # a malformed inventory must not stop a line
        log.warning("listing serial ports failed: %s", exc)
        return None
    return next((p.serial_number for p in ports
                 if p.serial_number and real in (os.path.realpath(p.device), p.device)), None)


async def _imei_of(path: str) -> str | None:
    try:
        link = await open_serial(path, open_timeout=PROBE_TIMEOUT)
    except OSError:
        return None
    session = AtSession(link, ())
    try:
        await session.start()
        resp = await session.command("AT+CGSN", PROBE_TIMEOUT)
        return next((ln.split(":")[-1].strip().strip('"') for ln in resp.lines if ln.strip()), None)
    except AtError:
        return None
    finally:
        await session.close()


async def relocate(identity: dict[str, str], profile: Profile, *, busy: set) -> tuple[str, str | None] | None:
    """(at_port, audio_port) of the modem with this identity, or None when it is not (yet) back."""
    from gateway.modem.ports import list_ports
    try:
        ports = await asyncio.to_thread(list_ports)
    except Exception as exc:        # a malformed inventory must not stop the ladder
        log.warning("listing serial ports failed: %s", exc)
        return None
    groups: dict[tuple, list] = {}
    for p in ports:
        groups.setdefault(_device_key(p), []).append(p)
    serial = identity.get("usb_serial")
    if serial:
        for key, group in groups.items():
            if key[2] == serial:
                at, audio = _pair(group, profile)
                if at and at not in busy:
                    return at, audio
    imei = identity.get("imei")
    if not imei:
        return None
    for group in groups.values():
        at, audio = _pair(group, profile)
        if at and at not in busy and await _imei_of(at) == imei:
            return at, audio
    return None
