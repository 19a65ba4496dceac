"""What a technician asks a modem: identity, SIM, operator, registration, radio, signal, IMS.

modem_info() runs the 27.007 queries one by one; a query that fails or times out is recorded in
ModemInfo.errors and the rest still run. The parse_* functions turn single reply lines into values
and are pure.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from gateway.at.errors import AtCommandError, AtError, AtLinkClosed, AtTimeout, CmeError
from gateway.at.session import AtSession
from gateway.modem.profile import Profile

DEFAULT_TIMEOUT = 3.0

# 27.007 §7.2 <stat> of +CREG/+CGREG/+CEREG.
REGISTRATION = {0: "not_registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming",
                6: "home_sms_only", 7: "roaming_sms_only", 8: "emergency_only", 9: "home_csfb_not_preferred",
                10: "roaming_csfb_not_preferred", 11: "emergency_only"}
# 27.007 §7.3 <AcT> of +COPS (and of +CREG/+CEREG with n=2).
ACCESS_TECHNOLOGY = {0: "GSM", 1: "GSM Compact", 2: "UTRAN (3G)", 3: "GSM/EGPRS", 4: "UTRAN/HSDPA",
                     5: "UTRAN/HSUPA", 6: "UTRAN/HSPA", 7: "E-UTRAN (LTE)", 8: "EC-GSM-IoT",
                     9: "E-UTRAN NB-IoT", 10: "E-UTRA/5GCN", 11: "NR/5GCN", 12: "NG-RAN", 13: "E-UTRA-NR dual"}
# +CME ERROR codes (27.007 §9.2) that describe the SIM, numeric and as AT+CMEE=2 text.
SIM_ERRORS = {10: "absent", 11: "pin_required", 12: "puk_required", 13: "failure", 14: "busy", 15: "wrong"}
SIM_ERROR_TEXT = {"sim not inserted": "absent", "sim pin required": "pin_required",
                  "sim puk required": "puk_required", "sim failure": "failure", "sim busy": "busy",
                  "sim wrong": "wrong"}
# +CME ERROR codes a technician meets, in words (27.007 §9.2).
CME_MEANING = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
               11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
               15: "SIM wrong", 16: "incorrect password", 22: "not found", 30: "no network service",
               100: "unknown", 515: "device busy"}
CPIN_STATES = {"READY": "ready", "SIM PIN": "pin_required", "SIM PUK": "puk_required",
               "SIM PIN2": "pin2_required", "SIM PUK2": "puk2_required", "PH-SIM PIN": "phone_locked",
               "NOT INSERTED": "absent", "SIM REMOVED": "absent", "NOT READY": "not_ready"}
# Registration states in order of preference when CS and PS/EPS domains disagree.
_REG_RANK = ("home", "roaming", "home_sms_only", "roaming_sms_only", "home_csfb_not_preferred",
             "roaming_csfb_not_preferred", "emergency_only", "searching", "denied", "not_registered", "unknown")


@dataclass
class ModemInfo:
    profile_id: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    imei: str | None = None
    imsi: str | None = None
    sim: str | None = None                 # ready | pin_required | puk_required | absent | ...
    operator: str | None = None            # long alphanumeric name
    operator_numeric: str | None = None    # MCC+MNC
    registration: str | None = None        # home | roaming | denied | searching | not_registered | ...
    registration_cs: str | None = None     # +CREG
    registration_ps: str | None = None     # +CGREG
    registration_eps: str | None = None    # +CEREG (LTE)
    access_technology: str | None = None
    act: int | None = None
    rssi: int | None = None                # +CSQ raw 0..31, None for 99
    signal_dbm: int | None = None
    signal_bars: int | None = None         # 0..5
    ber: int | None = None
    rsrp_dbm: float | None = None          # +CESQ (LTE), where the modem has it
    rsrq_db: float | None = None
    ims: str | None = None                 # registered | not_registered, from the profile's IMS query
    errors: dict[str, str] = field(default_factory=dict)     # command -> what went wrong
    answers: list[tuple[str, list[str]]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["answers"] = [{"command": c, "reply": list(lines)} for c, lines in self.answers]
        return d


async def modem_info(session: AtSession, profile: Profile | None, *, timeout: float | None = None) -> ModemInfo:
    """Query the modem on `session`; never raises for a failing query (see ModemInfo.errors)."""
    timeout = timeout or (profile.timeouts.default if profile else DEFAULT_TIMEOUT)
    info = ModemInfo(profile_id=profile.id if profile else None)
    gone = False

    async def ask(cmd: str) -> list[str] | None:
        """Lines of a successful reply, else None (failure recorded)."""
        nonlocal gone
        if gone:
            info.errors[cmd] = "not asked: the port is gone"
            return None
        try:
            response = await session.command(cmd, timeout)
        except AtTimeout as exc:
            info.answers.append((cmd, exc.partial + [f"(no final result within {timeout:g} s)"]))
            info.errors[cmd] = f"no answer within {timeout:g} s"
            return None
        except AtCommandError as exc:
            info.answers.append((cmd, exc.lines + [exc.final]))
            info.errors[cmd] = exc.final
            if cmd == "AT+CPIN?" and isinstance(exc, CmeError):
                info.sim = sim_from_error(exc.code)
            return None
        except AtLinkClosed as exc:
            gone = True
            info.errors[cmd] = str(exc)
            return None
        except AtError as exc:
            info.errors[cmd] = str(exc)
            return None
        info.answers.append((cmd, response.lines + [response.final]))
        return response.lines

    for cmd, attr in (("AT+CGMI", "manufacturer"), ("AT+CGMM", "model"), ("AT+CGMR", "firmware"),
                      ("AT+CGSN", "imei"), ("AT+CIMI", "imsi")):
        lines = await ask(cmd)
        if lines:
            setattr(info, attr, strip_prefix(lines[0], cmd))
    if info.imei and not re.fullmatch(r"\d{14,17}", info.imei):
        info.errors["AT+CGSN"] = f"not an IMEI: {info.imei!r}"
        info.imei = None
    if info.imsi and not re.fullmatch(r"\d{6,15}", info.imsi):
        info.errors["AT+CIMI"] = f"not an IMSI: {info.imsi!r}"
        info.imsi = None

    lines = await ask("AT+CPIN?")
    if lines is not None:
        info.sim = parse_cpin(_line_with(lines, "+CPIN:"))

    # Numeric first, then long alphanumeric (left selected: it is what most firmware starts with).
    # A modem that ignores the format switch answers in its own format; take whatever it gives.
    for fmt_cmd in ("AT+COPS=3,2", "AT+COPS=3,0"):
        await ask(fmt_cmd)
        _take_cops(info, parse_cops(_line_with(await ask("AT+COPS?"), "+COPS:")))

    domains = {}
    for cmd, attr in (("AT+CREG?", "registration_cs"), ("AT+CGREG?", "registration_ps"),
                      ("AT+CEREG?", "registration_eps")):
        lines = await ask(cmd)
        reg = parse_registration(_line_with(lines or [], cmd[2:-1] + ":"))
        if reg is not None:
            stat, act = reg
            setattr(info, attr, REGISTRATION.get(stat, f"unknown ({stat})"))
            domains[attr] = stat
            if info.act is None and act is not None and stat in (1, 5):
                info.act = act
    info.registration = best_registration([getattr(info, a) for a in domains])
    if info.act is not None:
        info.access_technology = ACCESS_TECHNOLOGY.get(info.act, f"AcT {info.act}")

    lines = await ask("AT+CSQ")
    csq = parse_csq(_line_with(lines or [], "+CSQ:"))
    if csq is not None:
        info.rssi, info.ber = csq
        info.signal_dbm = rssi_to_dbm(info.rssi)
        info.signal_bars = rssi_to_bars(info.rssi)
    lines = await ask("AT+CESQ")
    cesq = parse_cesq(_line_with(lines or [], "+CESQ:"))
    if cesq is not None:
        info.rsrq_db, info.rsrp_dbm = cesq

    query = ims_query(profile) if profile else None
    if query is not None:
        cmd, pattern = query
        lines = await ask(cmd)
        if lines is not None:
            info.ims = "registered" if re.search(pattern, "\n".join(lines), re.M) else "not_registered"
    return info


def _take_cops(info: ModemInfo, cops) -> None:
    if cops is None:
        return
    _, fmt, oper, act = cops
    if oper is not None:
        if fmt == 2 or (fmt is None and oper.isdigit()):
            info.operator_numeric = oper
        else:
            info.operator = oper
    if act is not None:
        info.act = act


def ims_query(profile: Profile) -> tuple[str, str] | None:
    """(command, regex matching a registered reply) when the profile says how to ask for IMS."""
    health = profile.health
    return (health.ims_query, health.ims_registered) if health.ims_query else None


# -- parsing ----------------------------------------------------------------------------------

def strip_prefix(line: str, command: str) -> str:
    """'+CGMR: LE20B04' -> 'LE20B04' for AT+CGMR; other lines unchanged but stripped."""
    name = command.upper()[2:].rstrip("?")
    if line.upper().startswith(name + ":"):
        return line[len(name) + 1:].strip()
    return line.strip()


def parse_cpin(line: str | None) -> str | None:
    """'+CPIN: READY' -> 'ready', '+CPIN: SIM PIN' -> 'pin_required'; other codes lower-cased."""
    if line is None:
        return None
    code = line.partition(":")[2].strip().strip('"').upper()
    return CPIN_STATES.get(code, code.lower().replace(" ", "_") or None)


def sim_from_error(code: int | str) -> str | None:
    """The SIM state a +CME ERROR to AT+CPIN? implies (10 / 'SIM not inserted' -> 'absent')."""
    if isinstance(code, int):
        return SIM_ERRORS.get(code)
    return SIM_ERROR_TEXT.get(code.strip().lower())


def parse_cops(line: str | None) -> tuple[int | None, int | None, str | None, int | None] | None:
    """'+COPS: 0,0,"Operator",7' -> (mode, format, operator, AcT); absent fields are None."""
    if line is None:
        return None
    body = line.partition(":")[2]
    fields = _split_fields(body)
    if not fields or not fields[0].isdigit():
        return None
    ints = [int(f) if f.isdigit() else None for f in fields]
    mode = ints[0]
    fmt = ints[1] if len(fields) > 1 else None
    oper = fields[2] if len(fields) > 2 and fields[2] != "" else None
    act = ints[3] if len(fields) > 3 else None
    return mode, fmt, oper, act


def parse_registration(line: str | None) -> tuple[int, int | None] | None:
    """A +CREG?/+CGREG?/+CEREG? reply '<n>,<stat>[,<lac>,<ci>[,<AcT>]]' -> (stat, AcT)."""
    if line is None:
        return None
    fields = _split_fields(line.partition(":")[2])
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    act = fields[4] if len(fields) > 4 else ""
    return int(fields[1]), int(act) if act.isdigit() else None


def best_registration(states: list[str | None]) -> str | None:
    """The most useful of the per-domain states (registered anywhere beats searching, ...)."""
    known = [s for s in states if s]
    if not known:
        return None
    return min(known, key=lambda s: _REG_RANK.index(s) if s in _REG_RANK else len(_REG_RANK))


def parse_csq(line: str | None) -> tuple[int | None, int | None] | None:
    """'+CSQ: 21,99' -> (21, None): 99 means not known."""
    if line is None:
        return None
    fields = _split_fields(line.partition(":")[2])
    if len(fields) < 2 or not fields[0].isdigit() or not fields[1].isdigit():
        return None
    rssi, ber = int(fields[0]), int(fields[1])
    return (rssi if 0 <= rssi <= 31 else None), (ber if 0 <= ber <= 7 else None)


def parse_cesq(line: str | None) -> tuple[float | None, float | None] | None:
    """'+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>' -> (RSRQ dB, RSRP dBm), 255 = unknown."""
    if line is None:
        return None
    fields = _split_fields(line.partition(":")[2])
    if len(fields) < 6 or not all(f.isdigit() for f in fields[:6]):
        return None
    rsrq, rsrp = int(fields[4]), int(fields[5])
    return (-20 + rsrq / 2 if rsrq <= 34 else None), (float(-140 + rsrp) if rsrp <= 97 else None)


def rssi_to_dbm(rssi: int | None) -> int | None:
    """27.007 +CSQ: 0 is -113 dBm or less, 31 is -51 dBm or more, 2 dB a step."""
    return None if rssi is None else -113 + 2 * rssi


def rssi_to_bars(rssi: int | None) -> int | None:
    """0..5 bars: 0 at rssi 0 (-113 dBm), 5 from rssi 20 (-73 dBm) up, a bar per 5 steps between."""
    if rssi is None:
        return None
    return 0 if rssi <= 0 else min(5, 1 + rssi // 5)


def _line_with(lines: list[str] | None, prefix: str) -> str | None:
    for line in lines or []:
        if line.upper().startswith(prefix.upper()):
            return line
    return None


def _split_fields(body: str) -> list[str]:
    """Comma-separated fields, quotes removed, commas inside quotes kept."""
    out, cur, quoted = [], [], False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out if any(out) else []
