"""Modem detection: probe serial ports, identify the modem, pick its profile, pair its audio port.

Ports are grouped by USB device (one modem exposes several ttys). For each device the candidate
AT ports are the profile's AT interface when the USB id is in a profile's table, else every tty
of the device. Candidates are probed in parallel, each within a bounded time: a port that is busy
(held exclusively, or used by the running daemon) is reported and never touched; the others get
`AT` (after a bare CR to flush a half-typed line, retried), then the identify commands. The reply
picks the profile (Profile.matches), the profile's USB table names the audio interface, and the
profile's voice probe, when it has one, tells whether the firmware can carry calls.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from gateway.at.errors import AtCommandError, AtError, AtLinkClosed, AtTimeout
from gateway.at.session import AtSession
from gateway.modem.ports import PortInfo
from gateway.modem.profile import Profile
from gateway.transport.serial_port import SerialLink, SerialOpenError, open_serial

log = logging.getLogger(__name__)

# Seconds a port gets to answer AT (spread over AT_ATTEMPTS tries); also each identify command's bound.
PROBE_TIMEOUT = 2.0
AT_ATTEMPTS = 3
# After the bare CR that ends whatever half-line the modem holds, its ERROR/OK has this long to arrive.
FLUSH_PAUSE = 0.1
# Identification stops after this many commands in a row got no answer (the modem went quiet).
MAX_SILENT_COMMANDS = 2
STANDARD_IDENTIFY = ("AT+CGMI", "AT+CGMM", "AT+CGMR", "ATI", "AT+CGSN")
# Lines that may arrive in the middle of a probe on any family (boot and periodic chatter).
PROBE_URC_PREFIXES = ("RDY", "+CPIN:", "SMS DONE", "PB DONE", "+QIND:", "+QUSIM:", "+CFUN:", "^RSSI:",
                      "^BOOT:", "^MODE:", "^SRVST:", "^SIMST:", "+CREG:", "+CEREG:", "+CGREG:", "RING",
                      "+CLIP:", "NO CARRIER")

STATUSES = ("ready", "unknown_modem", "no_voice", "in_use", "no_response", "not_a_modem")


@dataclass
class Identity:
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    imei: str | None = None


@dataclass
class Finding:
    device: str                              # the AT port, or the device's first port if none answered
    by_id: str | None
    usb: str | None                          # "1e0e:9001"
    serial_number: str | None
    ports: list[str]                         # every tty of this USB device
    manufacturer: str | None
    model: str | None
    firmware: str | None
    imei: str | None
    profile_id: str | None
    at_port: str | None
    audio_port: str | None
    status: str                              # one of STATUSES
    answers: list[tuple[str, list[str]]] = field(default_factory=list)
    advice: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["answers"] = [{"command": c, "reply": list(lines)} for c, lines in self.answers]
        return d


@dataclass
class _Probe:
    port: PortInfo
    outcome: str                             # "ok", "in_use", "no_response", "not_a_modem"
    detail: str = ""
    at: AtPort | None = None
    heard: list[str] = field(default_factory=list)
    answers: list[tuple[str, list[str]]] = field(default_factory=list)


def port_is_busy(exc: SerialOpenError) -> bool:
    """The open failed because someone else holds the port (exclusive lock or TIOCEXCL)."""
    return exc.errno in (errno.EBUSY, errno.EAGAIN) or "in use" in exc.reason


@dataclass
class AtPort:
    """An exclusively opened port with an AT session running on it."""

    device: str
    link: SerialLink
    session: AtSession

    async def close(self) -> None:
        await self.session.close()


async def open_at_port(device: str, urc_prefixes: Iterable[str], *, open_timeout: float) -> AtPort:
    """Open `device` exclusively and start an AT session on it; raises SerialOpenError."""
    link = await open_serial(device, open_timeout=open_timeout)
    session = AtSession(link, tuple(urc_prefixes))
    await session.start()
    return AtPort(device, link, session)


async def wake(port: AtPort, timeout: float, attempts: int = AT_ATTEMPTS) -> tuple[bool, list[tuple[str, list[str]]]]:
    """Send a bare CR (ends any half-line the modem holds), then AT until it answers OK.

    Returns (answered OK, [(command, reply lines ending with the final result or a timeout note)]).
    """
    answers: list[tuple[str, list[str]]] = []
    session = port.session
    port.link.write(b"\r")
    await asyncio.sleep(FLUSH_PAUSE)
    each = timeout / attempts
    for _ in range(attempts):
        reply, ok = await ask(session, "AT", each)
        answers.append(("AT", reply))
        if ok:
            return True, answers
        if session.closed:
            break
    return False, answers


async def ask(session: AtSession, command: str, timeout: float) -> tuple[list[str], bool]:
    """Run one command; (its lines plus the final result or a note on the failure, succeeded)."""
    try:
        response = await session.command(command, timeout)
    except AtTimeout as exc:
        return exc.partial + [f"(no final result within {timeout:.2g} s)"], False
    except AtCommandError as exc:
        return exc.lines + [exc.final], False
    except AtLinkClosed as exc:
        return [f"(port closed: {exc})"], False
    except AtError as exc:
        return [f"({exc})"], False
    return response.lines + [response.final], True


def identify_commands(profiles: Iterable[Profile]) -> tuple[str, ...]:
    """The standard identification commands, then every other command the profiles ask."""
    out = list(STANDARD_IDENTIFY)
    for p in profiles:
        for cmd in p.identify_commands:
            if cmd.upper() not in (c.upper() for c in out):
                out.append(cmd)
    return tuple(out)


async def identify(session: AtSession, commands: Iterable[str], timeout: float) -> tuple[Identity, list[tuple[str, list[str]]]]:
    """Ask the identify commands; a command that fails is recorded and the next one asked."""
    answers: list[tuple[str, list[str]]] = []
    silent = 0
    for cmd in commands:
        reply, ok = await ask(session, cmd, timeout)
        answers.append((cmd, reply))
        silent = 0 if ok or not reply[-1].startswith("(no final") else silent + 1
        if silent >= MAX_SILENT_COMMANDS or session.closed:
            break
    return parse_identity(answers), answers


def parse_identity(answers: Iterable[tuple[str, list[str]]]) -> Identity:
    """Manufacturer, model, firmware and IMEI from identification replies (27.007, V.250, ATI)."""
    replies = {cmd.upper(): _text_lines(lines) for cmd, lines in answers}
    ident = Identity()

    def first(*cmds: str) -> str | None:
        for cmd in cmds:
            lines = replies.get(cmd)
            if lines:
                return _strip_prefix(lines[0], cmd)
        return None

    ident.manufacturer = first("AT+CGMI", "AT+GMI")
    ident.model = first("AT+CGMM", "AT+GMM")
    ident.firmware = first("AT+CGMR", "AT+GMR")
    imei = first("AT+CGSN", "AT+GSN")
    ati = replies.get("ATI", [])
    fields = {k.strip().lower(): v.strip() for k, sep, v in (line.partition(":") for line in ati) if sep}
    ident.manufacturer = ident.manufacturer or fields.get("manufacturer")
    ident.model = ident.model or fields.get("model")
    ident.firmware = ident.firmware or fields.get("revision")
    imei = imei or fields.get("imei")
    plain = [line for line in ati if ":" not in line]
    if not {"manufacturer", "model"} & fields.keys() and len(plain) >= 2:        # Quectel: "Quectel" / "EC25" / "Revision: ..."
        ident.manufacturer = ident.manufacturer or plain[0]
        ident.model = ident.model or plain[1]
    if ident.model is None:                   # V.253: ATI3 names the chip, ATI0 the product code
        ident.model = first("ATI3", "ATI0")
    if imei and re.fullmatch(r"\d{14,17}", imei):
        ident.imei = imei
    return ident


def choose_profile(ident: Identity, answers: Iterable[tuple[str, list[str]]], profiles: Iterable[Profile],
                   preferred: Iterable[Profile] = ()) -> Profile | None:
    """The profile whose identify patterns match the parsed identity; failing that, the one whose
    patterns match the replies to its own identify commands. `preferred` (USB match) wins ties."""
    profiles = list(preferred) + [p for p in profiles if p not in list(preferred)]
    for p in profiles:
        if p.matches(ident.manufacturer or "", ident.model or ""):
            return p
    replies = {cmd.upper(): _text_lines(lines) for cmd, lines in answers}
    for p in profiles:
        text = "\n".join(line for cmd in p.identify_commands for line in replies.get(cmd.upper(), []))
        if text and p.matches(text, text):
            return p
    return None


def voice_probe(profile: Profile) -> tuple[str, str] | None:
    """(command, regex its reply must match) when the profile says how to test for voice firmware."""
    return (profile.voice.probe, profile.voice.expect) if profile.voice.probe else None


async def scan(ports: Iterable[PortInfo], profiles: Iterable[Profile], *, probe_timeout: float = PROBE_TIMEOUT,
               busy: Mapping[str, str] | Iterable[str] = ()) -> list[Finding]:
    """Probe every USB device's candidate AT ports in parallel; one Finding per device.

    busy: ports not to touch (device path -> who uses it, or just paths); they are reported in use.
    Every device's probe is bounded by device_budget(); the whole scan by the largest of them.
    """
    profiles = list(profiles)
    busy_map = dict(busy) if isinstance(busy, Mapping) else {p: "" for p in busy}
    groups: dict[tuple, list[PortInfo]] = {}
    for port in ports:
        groups.setdefault(port.device_key, []).append(port)
    tasks = [_scan_device(sorted(g, key=_port_order), profiles, probe_timeout, busy_map) for g in groups.values()]
    return list(await asyncio.gather(*tasks))


def device_budget(profiles: Iterable[Profile], probe_timeout: float) -> float:
    """The longest one device's probe may take: open, AT, every identify command, the voice probe."""
    return probe_timeout * (2 + len(identify_commands(profiles)) + 1) + FLUSH_PAUSE + 0.5


async def _scan_device(group: list[PortInfo], profiles: list[Profile], timeout: float,
                       busy: Mapping[str, str]) -> Finding:
    first = group[0]
    usb_profiles = [p for p in profiles if any(u.vid == first.vid and u.pid == first.pid for u in p.usb)]
    at_ifaces = {u.at_interface for p in usb_profiles for u in p.usb if u.vid == first.vid and u.pid == first.pid}
    candidates = ([p for p in group if p.interface in at_ifaces]
                  or [p for p in group if p.role == "at"] or list(group))
    probes: list[_Probe] = []
    budget = device_budget(usb_profiles or profiles, timeout)
    try:
        return await asyncio.wait_for(_probe_device(group, candidates, usb_profiles, profiles, timeout, busy, probes),
                                      budget)
    except TimeoutError:
        return _finding(group, candidates[0], "no_response", [],
                        advice=f"the probe did not finish within {budget:g} s; the modem may be booting or "
                               "wedged: replug it or wait, then scan again")
    finally:
        for probe in probes:
            if probe.at is not None:
                await probe.at.close()


async def _probe_device(group, candidates, usb_profiles, profiles, timeout, busy, probes: list[_Probe]) -> Finding:
    urcs = urc_prefixes(profiles)
    probes.extend(await asyncio.gather(*(_probe_port(p, urcs, timeout, busy) for p in candidates)))
    answering = [p for p in probes if p.outcome == "ok"]
    if not answering:
        return _silent_finding(group, probes, timeout)
    chosen = answering[0]
    for other in answering[1:]:      # a second AT port (PPP, secondary): leave it alone from here on
        await other.at.close()
        other.at = None
    commands = identify_commands(usb_profiles or profiles)
    ident, answers = await identify(chosen.at.session, commands, timeout)
    answers = chosen.answers[-1:] + answers
    profile = choose_profile(ident, answers, profiles, usb_profiles)
    at = chosen.port
    if profile is None:
        return _finding(group, at, "unknown_modem", answers, ident=ident, at_port=at.device,
                        advice=_unknown_advice(ident, profiles))
    audio = _audio_port(group, at, profile)
    probe = voice_probe(profile)
    if probe is not None:
        command, expect = probe
        reply, ok = await ask(chosen.at.session, command, timeout)
        answers.append((command, reply))
        text = "\n".join(_text_lines(reply))
        if not ok or not re.search(expect, text, re.I | re.M):
            return _finding(group, at, "no_voice", answers, ident=ident, profile=profile, at_port=at.device,
                            audio_port=audio, advice=(
                                f"this firmware ({ident.firmware or 'unknown revision'}) has no voice: {command} "
                                f"answered {' / '.join(reply)!r}, not /{expect}/. "
                                + (profile.voice.missing or "Calls need firmware with voice or another modem; "
                                   "data and SMS may still work.")))
    return _finding(group, at, "ready", answers, ident=ident, profile=profile, at_port=at.device,
                    audio_port=audio, advice=_ready_advice(group, at, audio, profile))


async def _probe_port(port: PortInfo, urcs: tuple[str, ...], timeout: float, busy: Mapping[str, str]) -> _Probe:
    who = busy_owner(port, busy)
    if who is not None:
        return _Probe(port, "in_use", who or "listed as busy")
    try:
        at = await open_at_port(port.device, urcs, open_timeout=timeout)
    except SerialOpenError as exc:
        if port_is_busy(exc):
            return _Probe(port, "in_use", exc.reason)
        return _Probe(port, "no_response", f"cannot open: {exc.reason}")
    probe = _Probe(port, "no_response", at=at)
    at.session.add_urc_listener(probe.heard.append)
    ok, answers = await wake(at, timeout)
    probe.answers = answers
    if ok:
        probe.outcome = "ok"
    else:
        noise = [line for _, reply in answers for line in reply if not line.startswith("(")]
        if noise or probe.heard:
            probe.outcome = "not_a_modem"
    return probe


def _silent_finding(group: list[PortInfo], probes: list[_Probe], timeout: float) -> Finding:
    by_outcome = {p.outcome: p for p in reversed(probes)}
    answers = [(f"{p.port.device}: {cmd}", reply) for p in probes for cmd, reply in p.answers]
    answers += [(f"{p.port.device}: (unsolicited)", p.heard[:10]) for p in probes if p.heard]
    if "in_use" in by_outcome:
        p = by_outcome["in_use"]
        return _finding(group, p.port, "in_use", answers, advice=(
            f"{p.port.device} is in use ({p.detail}); it was not touched. Stop the program holding it "
            "(ModemManager, minicom, another callgate) to probe it, or leave it if that is the gateway itself."))
    if "not_a_modem" in by_outcome:
        p = by_outcome["not_a_modem"]
        return _finding(group, p.port, "not_a_modem", answers, advice=(
            f"{p.port.device} sent data but never answered OK to AT: not an AT command port (GPS/NMEA, "
            "diagnostics or an audio stream). Try the device's other interfaces."))
    p = probes[0]
    detail = f" ({p.detail})" if p.detail else ""
    return _finding(group, p.port, "no_response", answers, advice=(
        f"{p.port.device} did not answer AT within {timeout:g} s{detail}: not an AT port (diag, audio), or "
        "the modem is still booting or wedged. Wait 30 s or replug it and scan again; "
        "`callgate modem at PORT` talks to it directly."))


def _finding(group: list[PortInfo], port: PortInfo, status: str, answers, *, ident: Identity | None = None,
             profile: Profile | None = None, at_port: str | None = None, audio_port: str | None = None,
             advice: str = "") -> Finding:
    ident = ident or Identity()
    return Finding(device=port.device, by_id=port.by_id, usb=port.usb_id, serial_number=port.serial_number,
                   ports=[p.device for p in group], manufacturer=ident.manufacturer, model=ident.model,
                   firmware=ident.firmware, imei=ident.imei, profile_id=profile.id if profile else None,
                   at_port=at_port, audio_port=audio_port, status=status, answers=list(answers), advice=advice)


def _audio_port(group: list[PortInfo], at: PortInfo, profile: Profile) -> str | None:
    if profile.audio.transport != "serial":
        return None
    for u in profile.usb:
        if u.vid == at.vid and u.pid == at.pid and u.audio_interface is not None:
            for p in group:
                if p.interface == u.audio_interface:
                    return p.device
    for p in group:
        if p.role == "audio" and p is not at:
            return p.device
    return None


def _ready_advice(group, at: PortInfo, audio: str | None, profile: Profile) -> str:
    names = {p.device: (p.by_id or p.device) for p in group}
    parts = [f'profile = "{profile.id}"', f'at_port = "{names[at.device]}"']
    if audio:
        parts.append(f'audio_port = "{names[audio]}"')
    text = "add a [[lines]] entry: " + ", ".join(parts)
    if profile.audio.transport == "serial" and audio is None:
        text += (". Its audio tty was not found next to the AT port: check the USB composition "
                 f"({profile.id} expects interface {', '.join(str(u.audio_interface) for u in profile.usb)})")
    elif profile.audio.transport == "sounddevice":
        text += ". Audio goes through a sound card (set the line's sound device)"
    return text


def _unknown_advice(ident: Identity, profiles: list[Profile]) -> str:
    manufacturer, model = ident.manufacturer or "?", ident.model or "?"
    same_maker = [p.id for p in profiles if ident.manufacturer and re.search(p.manufacturer_pattern, ident.manufacturer, re.I)]
    closest = (f"firmware_config/{same_maker[0]}.toml" if same_maker
               else "the closest firmware_config/*.toml (same family or chipset)")
    return (f"no profile matches manufacturer {manufacturer!r} model {model!r}: copy {closest} to a new file, "
            f"set [profile] id to the file name and [identify] model = \"{re.escape(model)}\", check its "
            "commands against the modem's manual, then scan again.")


def busy_owner(port: PortInfo, busy: Mapping[str, str]) -> str | None:
    """Who holds `port` according to `busy` (path or by-id name -> who), or None."""
    real = os.path.realpath(port.device)
    for path, who in busy.items():
        if path in port.names() or os.path.realpath(path) == real:
            return who
    return None


def urc_prefixes(profiles: Iterable[Profile]) -> tuple[str, ...]:
    """Unsolicited-line prefixes of every family, for a port whose modem is not known yet."""
    return tuple(dict.fromkeys([*PROBE_URC_PREFIXES, *(u for p in profiles for u in p.urc_prefixes)]))


def _port_order(port: PortInfo) -> tuple:
    return (port.interface if port.interface is not None else 999, port.device)


def _text_lines(lines: Iterable[str]) -> list[str]:
    """Reply lines without the final result code or our notes."""
    return [line for line in lines
            if line and not line.startswith("(") and line not in ("OK", "ERROR", "COMMAND NOT SUPPORT")
            and not line.startswith(("+CME ERROR", "+CMS ERROR"))]


def _strip_prefix(line: str, command: str) -> str:
    """'+CGMR: LE20B04' -> 'LE20B04' for AT+CGMR; 'Revision: X' -> 'X'."""
    name = command.upper()[2:]
    for prefix in (name + ":", "REVISION:", "MANUFACTURER:", "MODEL:", "IMEI:"):
        if line.upper().startswith(prefix):
            return line[len(prefix):].strip()
    return line.strip()
