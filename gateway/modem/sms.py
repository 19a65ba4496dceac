"""SMS over one modem's AT session (3GPP 27.005): set up, send, receive, reassemble, never lose one.

Receiving: +CMTI: "<mem>",<index> (stored, then indicated; the recommended AT+CNMI=2,1,...) is
read with AT+CMGR and deleted with AT+CMGD only after on_message has taken the whole message,
so a crash or restart never loses one: setup() lists what is already stored (AT+CMGL) and
delivers it. Parts of a concatenated message stay in the modem's storage until the message is
complete (or the reassembly wait ran out: it comes out with its missing part numbers). Direct
delivery (+CMT: header line, then the PDU on the next line) is understood too.
Delivery is at least once: a crash between on_message and AT+CMGD repeats the message.

Sending: PDU mode handles any text (GSM-7 or UCS-2, multipart). Text mode sends one SMS only
(27.005 text mode has no way to add a concatenation header): 160 GSM-7 or 70 UCS-2 characters.
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from gateway.at.errors import AtCommandError, AtError, AtLinkClosed, CmsError
from gateway.at.session import AtResponse, AtSession
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.modem.profile import Sms
from gateway.modem.sms_pdu import (Deliver, PduError, Reassembled, Reassembler, decode_deliver,
                                   encode_submit, fix_surrogates, split_text)

log = logging.getLogger(__name__)

DEFAULT_CNMI = "AT+CNMI=2,1,0,0,0"     # store, then indicate with +CMTI; no status reports
_CMS_MEANINGS = {
    1: "unassigned (unallocated) number", 8: "operator determined barring", 10: "call barred",
    21: "short message transfer rejected", 27: "destination out of service",
    28: "unidentified subscriber", 29: "facility rejected", 30: "unknown subscriber",
    38: "network out of order", 41: "temporary failure", 42: "congestion",
    47: "resources unavailable", 50: "requested facility not subscribed",
    69: "requested facility not implemented", 81: "invalid short message transfer reference",
    95: "invalid message", 96: "invalid mandatory information",
    97: "message type non-existent or not implemented", 98: "message not compatible with state",
    99: "information element non-existent or not implemented", 111: "protocol error",
    127: "interworking error", 128: "telematic interworking not supported",
    129: "short message type 0 not supported", 130: "cannot replace short message",
    143: "unspecified TP-PID error", 144: "data coding scheme (alphabet) not supported",
    145: "message class not supported", 159: "unspecified TP-DCS error",
    160: "command cannot be actioned", 161: "command unsupported", 175: "unspecified TP-Command error",
    176: "TPDU not supported", 192: "SMS centre busy", 193: "no SMS centre subscription",
    194: "SMS centre system failure", 195: "invalid SME address", 196: "destination SME barred",
    197: "SM rejected: duplicate", 198: "TP-VPF not supported", 199: "TP-VP not supported",
    208: "SIM SMS storage full", 209: "no SMS storage capability in SIM", 210: "error in MS",
    211: "memory capacity exceeded", 212: "SIM application toolkit busy", 213: "SIM data download error",
    255: "unspecified error cause", 300: "ME failure", 301: "SMS service of ME reserved",
    302: "operation not allowed", 303: "operation not supported", 304: "invalid PDU mode parameter",
    305: "invalid text mode parameter", 310: "SIM not inserted", 311: "SIM PIN required",
    312: "PH-SIM PIN required", 313: "SIM failure", 314: "SIM busy", 315: "SIM wrong",
    316: "SIM PUK required", 317: "SIM PIN2 required", 318: "SIM PUK2 required",
    320: "memory failure", 321: "invalid memory index", 322: "memory full",
    330: "SMS centre address unknown", 331: "no network service", 332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    350: "rejected by the network or SMS centre (vendor code: check the SIM has SMS service "
         "and the SMSC address, AT+CSCA?)",
    500: "unknown error",
}
# GSM-7 and ASCII agree on these, so text mode can send them with AT+CSCS="GSM" as they are.
_PLAIN = re.compile(r"[A-Za-z0-9 !\"#%&'()*+,\-./:;<=>?]*")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_TEXT_SCTS = re.compile(r"(\d\d)/(\d\d)/(\d\d),(\d\d):(\d\d):(\d\d)([+-]\d+)?")
_TEXT_STAT = ("REC UNREAD", "REC READ")


def cms_meaning(code: int | str) -> str:
    """What +CMS ERROR: <code> means (27.005 §3.2.5, 24.011 and 23.040 causes)."""
    if isinstance(code, str):
        return code                    # AT+CMEE=2 already gave the text
    if code in _CMS_MEANINGS:
        return _CMS_MEANINGS[code]
    if 512 <= code:
        return "manufacturer specific"
    return "reserved / unknown code"


class SmsError(Exception):
    """An SMS operation failed; `code`/`meaning` carry a +CMS ERROR, `sent` the references of
    the parts that went out before it failed."""

    def __init__(self, message: str, *, code: int | str | None = None,
                 sent: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.meaning = cms_meaning(code) if code is not None else ""
        self.sent = list(sent)


@dataclass(frozen=True)
class IncomingSms:
    """A received message, reassembled; `missing` lists part numbers that never came."""

    sender: str
    text: str
    timestamp: datetime
    parts: int
    missing: tuple[int, ...] = ()


OnMessage = Callable[[IncomingSms], "Awaitable[None] | None"]
_Location = tuple[str, int]              # (storage, index) in the modem
_Key = tuple[str, int, int]              # (sender, reference, total) of a concatenated message


class SmsService:
    """Sends and receives SMS on one AtSession. Call setup() once, feed URCs to handle_urc()."""

    def __init__(self, session: AtSession, *, on_message: OnMessage | None = None,
                 mode: Literal["pdu", "text"] = "pdu", cnmi: str = DEFAULT_CNMI,
                 storage: str | None = None, extra_setup: Sequence[str] = (),
                 clock: Clock = SYSTEM_CLOCK, command_timeout: float = 5.0,
                 send_timeout: float = 60.0, list_timeout: float = 30.0,
                 handler_timeout: float = 30.0, reassembly_wait: float = 900.0,
                 max_parts: int = 200, smsc_prefix: bool = True,
                 validity_minutes: int | None = None) -> None:
        if mode not in ("pdu", "text"):
            raise ValueError(f"SMS mode {mode!r} is not pdu or text")
        self.on_message = on_message
        self.mode = mode
        self._session = session
        self._setup_commands = [f"AT+CMGF={0 if mode == 'pdu' else 1}", cnmi]
        if storage:
            self._setup_commands.append(f'AT+CPMS="{storage}","{storage}","{storage}"')
        self._setup_commands += list(extra_setup)
        self._clock = clock
        self.command_timeout = command_timeout
        self.send_timeout = send_timeout
        self.list_timeout = list_timeout
        self.handler_timeout = handler_timeout
        self._smsc_prefix = smsc_prefix
        self._validity = validity_minutes
        self._reassembler = Reassembler(max_wait=reassembly_wait, max_parts=max_parts)
        self._where: dict[_Key, set[_Location]] = {}
        self._lock = asyncio.Lock()          # one SMS operation (several commands) at a time
        self._queue: asyncio.Queue[tuple] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._mem1: str | None = None        # storage AT+CMGR/CMGD/CMGL work on
        self._stores: list[str] = []
        self._charset: str | None = None     # text mode: the current AT+CSCS
        self._cmt_header: str | None = None  # a +CMT: line whose body line is still to come
        self._reference = int(clock.time()) % 255   # concatenation reference, 1..255
        self.received = 0
        self.sent = 0

    @classmethod
    def from_profile(cls, session: AtSession, sms: Sms, **kwargs) -> SmsService:
        """Build from a profile's [sms] table: its mode, its AT+CNMI line, its other setup lines
        (AT+CMGF is the service's own, from the mode)."""
        setup = [c for c in sms.setup if not c.upper().startswith("AT+CMGF")]
        cnmi = next((c for c in setup if c.upper().startswith("AT+CNMI")), DEFAULT_CNMI)
        extra = [c for c in setup if c is not cnmi]
        return cls(session, mode=sms.mode, cnmi=cnmi, extra_setup=extra, **kwargs)

    # -- life ------------------------------------------------------------------------------

    async def setup(self) -> int:
        """Configure SMS, deliver what is already stored, start the receiver; returns the count
        of stored parts taken in. Raises SmsError (or AtLinkClosed)."""
        async with self._lock:
            for cmd in self._setup_commands:
                await self._command(cmd)
            if self.mode == "text":
                await self._set_charset("UCS2")
            await self._learn_storage()
        # Listing before the receiver runs: a +CMTI queued meanwhile then finds its message
        # already taken (and deleted) instead of delivering it a second time.
        count = await self.sync_stored()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="sms-receiver")
        return count

    async def close(self) -> None:
        """Stop the receiver. Parts still waiting stay in the modem's storage for next time."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def sync_stored(self) -> int:
        """Read every received message in the modem's storage (AT+CMGL) and take it in."""
        count = 0
        for mem in self._stores or [""]:
            async with self._lock:
                await self._select(mem)
                entries = await self._list()
            for index, part in entries:
                count += 1
                await self._take(part, (mem, index))
        return count

    # -- sending ---------------------------------------------------------------------------

    async def send(self, number: str, text: str) -> list[int]:
        """Send `text` to `number`; returns the message reference (TP-MR) of each part sent.

        Raises SmsError: a +CMS ERROR (with code and meaning), a time-out, a closed port, a text
        that text mode cannot send, or a PduError's complaint about the number or text.
        """
        try:
            if self.mode == "text":
                return [await self._send_text(number, text)]
            return await self._send_pdu(number, text)
        except AtLinkClosed as exc:
            raise SmsError(f"SMS to {number} not sent: {exc}") from exc
        except PduError as exc:
            raise SmsError(f"SMS to {number!r} not sent: {exc}") from exc

    async def _send_pdu(self, number: str, text: str) -> list[int]:
        self._reference = self._reference % 255 + 1
        pdus = encode_submit(number, text, reference=self._reference, smsc=self._smsc_prefix,
                             validity_minutes=self._validity)
        sent: list[int] = []
        async with self._lock:
            for i, pdu in enumerate(pdus, 1):
                what = f"SMS to {number}" + (f" (part {i} of {len(pdus)})" if len(pdus) > 1 else "")
                resp = await self._command(f"AT+CMGS={pdu.tpdu_length}", self.send_timeout,
                                           body=pdu.hex.encode("ascii"), what=what, sent=sent)
                sent.append(_message_reference(resp.lines))
        self.sent += 1
        return sent

    async def _send_text(self, number: str, text: str) -> int:
        encoding, parts = split_text(text)
        if len(parts) > 1:
            limit = 160 if encoding == "gsm7" else 70
            raise SmsError(f"SMS to {number} not sent: text mode sends a single SMS (at most {limit} "
                           f"{'GSM-7' if encoding == 'gsm7' else 'UCS-2'} characters); this text "
                           f"needs {len(parts)} parts, use PDU mode")
        plain = _PLAIN.fullmatch(text) is not None
        async with self._lock:
            if plain:
                await self._set_charset("GSM")
                await self._command("AT+CSMP=17,167,0,0")
                cmd, body = f'AT+CMGS="{number}"', text
            else:
                await self._set_charset("UCS2")
                await self._command(f"AT+CSMP=17,167,0,{0 if encoding == 'gsm7' else 8}")
                cmd, body = f'AT+CMGS="{_ucs2_hex(number)}"', _ucs2_hex(text)
            resp = await self._command(cmd, self.send_timeout, body=body.encode("ascii"),
                                       what=f"SMS to {number}")
            if plain:
                await self._set_charset("UCS2")     # received texts come as hex again
        self.sent += 1
        return _message_reference(resp.lines)

    # -- receiving -------------------------------------------------------------------------

    def handle_urc(self, line: str) -> bool:
        """Take an unsolicited line if it is about SMS (+CMTI, +CMT and the line after +CMT)."""
        if self._cmt_header is not None:
            header, self._cmt_header = self._cmt_header, None
            if self._queue_cmt(header, line):
                return True
            log.warning("SMS: %r was not followed by its body (got %r); message lost", header, line)
        if line.startswith("+CMTI:"):
            fields = _fields(line)
            try:
                mem, index = fields[0], int(fields[1])
            except (IndexError, ValueError):
                log.warning("SMS: cannot read %r", line)
                return True
            self._queue.put_nowait(("stored", mem, index))
            return True
        if line.startswith("+CMT:"):
            self._cmt_header = line
            return True
        return False

    def _queue_cmt(self, header: str, body: str) -> bool:
        if self.mode == "pdu":
            if _HEX.fullmatch(body) is None:
                return False
            try:
                part = decode_deliver(body)
            except PduError as exc:
                log.warning("SMS: undecodable direct delivery %s: %s", body, exc)
                return True
        else:
            if self._charset == "UCS2" and _HEX.fullmatch(body) is None:
                return False
            part = self._text_deliver(_fields(header), body)
        self._queue.put_nowait(("direct", part))
        return True

    async def _run(self) -> None:
        while True:
            job = await self._next_job()
            try:
                if job[0] == "stored":
                    await self._read_one(job[1], job[2])
                elif job[0] == "direct":
                    await self._take(job[1], None)
                else:
                    for msg in self._reassembler.expire(self._clock.monotonic()):
                        await self._deliver(msg)
            except AtLinkClosed:
                log.info("SMS: AT link closed, receiver stops")
                return
            except (AtError, SmsError) as exc:
                log.warning("SMS: %s", exc)
            except Exception:
                log.exception("SMS: handling %r failed", job)

    async def _next_job(self) -> tuple:
        deadline = self._reassembler.next_deadline()
        if deadline is None:
            return await self._queue.get()
        get = asyncio.ensure_future(self._queue.get())
        wait = asyncio.ensure_future(self._clock.sleep(max(0.0, deadline - self._clock.monotonic())))
        try:
            await asyncio.wait((get, wait), return_when=asyncio.FIRST_COMPLETED)
        finally:
            wait.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            return get.result()
        return ("expire",)

    async def _read_one(self, mem: str, index: int) -> None:
        async with self._lock:
            await self._select(mem)
            try:
                resp = await self._command(f"AT+CMGR={index}")
            except SmsError as exc:
                log.warning("SMS: stored message %s %d not read: %s", mem, index, exc)
                return
            part = self._parse_cmgr(resp.lines, mem, index)
        if part is not None:
            await self._take(part, (mem, index))

    async def _take(self, part: Deliver, where: _Location | None) -> None:
        c = part.concat
        if c is not None and c.total > 1 and where is not None:
            self._where.setdefault((part.sender, c.reference, c.total), set()).add(where)
        for msg in self._reassembler.add(part, self._clock.monotonic()):
            single = msg.reference is None
            await self._deliver(msg, [where] if single and where is not None else None)

    async def _deliver(self, msg: Reassembled, locations: list[_Location] | None = None) -> None:
        if locations is None:
            locations = sorted(self._where.pop((msg.sender, msg.reference, msg.parts), ()))
        sms = IncomingSms(msg.sender, msg.text, msg.timestamp, msg.parts, msg.missing)
        if msg.missing:
            log.warning("SMS from %s: parts %s of %d never came", msg.sender, msg.missing, msg.parts)
        if self.on_message is not None:
            try:
                result = self.on_message(sms)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, self.handler_timeout)
            except Exception:
                log.exception("SMS from %s: handler failed; the message stays in the modem's "
                              "storage and comes again at the next setup", msg.sender)
                return
        self.received += 1
        async with self._lock:
            for mem, index in locations:
                await self._select(mem)
                try:
                    await self._command(f"AT+CMGD={index}")
                except SmsError as exc:
                    log.warning("SMS: delivered message %s %d not deleted: %s", mem, index, exc)

    # -- reading the modem's answers ---------------------------------------------------------

    async def _list(self) -> list[tuple[int, Deliver]]:
        if self.mode == "pdu":
            resp = await self._command("AT+CMGL=4", self.list_timeout)
        else:
            await self._set_charset("UCS2")
            resp = await self._command('AT+CMGL="ALL"', self.list_timeout)
        out = []
        lines = resp.lines
        for i, line in enumerate(lines):
            if not line.startswith("+CMGL:"):
                continue
            body = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("+CMGL:") else ""
            fields = _fields(line)
            try:
                index = int(fields[0])
            except (IndexError, ValueError):
                log.warning("SMS: cannot read %r", line)
                continue
            part = self._parse_entry(fields[1:], body, self._mem1 or "", index)
            if part is not None:
                out.append((index, part))
        return out

    def _parse_cmgr(self, lines: list[str], mem: str, index: int) -> Deliver | None:
        for i, line in enumerate(lines):
            if line.startswith("+CMGR:"):
                body = lines[i + 1] if i + 1 < len(lines) else ""
                return self._parse_entry(_fields(line), body, mem, index)
        log.info("SMS: %s %d is empty", mem, index)
        return None

    def _parse_entry(self, fields: list[str], body: str, mem: str, index: int) -> Deliver | None:
        """A +CMGR/+CMGL entry (fields after the index for CMGL) with its body line."""
        stat = fields[0] if fields else ""
        if self.mode == "pdu":
            if stat not in ("0", "1"):        # 2/3: sent or unsent messages of our own
                return None
            try:
                return decode_deliver(body)
            except PduError as exc:
                log.warning("SMS: stored message %s %d undecodable, left in storage: %s (%s)",
                            mem, index, exc, body)
                return None
        if stat not in _TEXT_STAT:
            return None
        return self._text_deliver(fields[1:], body)

    def _text_deliver(self, fields: list[str], body: str) -> Deliver:
        """Text mode: <oa>,[<alpha>],<scts> and the text, hex UCS-2 under AT+CSCS="UCS2"."""
        sender = _from_ucs2(fields[0]) if fields else ""
        scts = next((f for f in fields[1:] if _TEXT_SCTS.fullmatch(f)), "")
        text = body
        if self._charset == "UCS2" and _HEX.fullmatch(body) and len(body) % 4 == 0:
            text = fix_surrogates(bytes.fromhex(body).decode("utf-16-be", "surrogatepass"))
        return Deliver(sender, text, self._text_time(scts), None)

    def _text_time(self, scts: str) -> datetime:
        m = _TEXT_SCTS.fullmatch(scts)
        if m:
            yy, mo, dd, hh, mi, ss = (int(g) for g in m.groups()[:6])
            quarters = int(m.group(7) or 0)
            try:
                return datetime(2000 + yy if yy < 80 else 1900 + yy, mo, dd, hh, mi, ss,
                                tzinfo=timezone(timedelta(minutes=15 * quarters)))
            except ValueError:
                pass
        log.info("SMS: timestamp %r unreadable, using the time of reading", scts)
        return datetime.fromtimestamp(self._clock.time(), timezone.utc)

    # -- commands --------------------------------------------------------------------------

    async def _learn_storage(self) -> None:
        """Which storages to list: the read store (mem1) and the receive store (mem3)."""
        try:
            resp = await self._command("AT+CPMS?")
        except SmsError as exc:
            log.info("SMS: AT+CPMS? failed (%s); using the modem's current storage", exc)
            return
        line = next((ln for ln in resp.lines if ln.startswith("+CPMS:")), "")
        fields = _fields(line)
        names = [f for f in fields if f and not f.isdigit()]
        if names:
            self._mem1 = names[0]
            self._stores = list(dict.fromkeys([names[0], names[-1]]))

    async def _select(self, mem: str) -> None:
        if mem and mem != self._mem1:
            await self._command(f'AT+CPMS="{mem}"')
            self._mem1 = mem

    async def _set_charset(self, charset: str) -> None:
        if self._charset != charset:
            await self._command(f'AT+CSCS="{charset}"')
            self._charset = charset

    async def _command(self, cmd: str, timeout: float | None = None, *, body: bytes | None = None,
                       what: str | None = None, sent: Sequence[int] = ()) -> AtResponse:
        """Run one command; failures other than a closed link become SmsError."""
        what = what or cmd
        try:
            return await self._session.command(cmd, timeout or self.command_timeout, body=body)
        except CmsError as exc:
            raise SmsError(f"{what}: +CMS ERROR {exc.code} ({cms_meaning(exc.code)})",
                           code=exc.code, sent=sent) from exc
        except AtLinkClosed:
            raise
        except AtCommandError as exc:
            raise SmsError(f"{what}: {exc.final}", sent=sent) from exc
        except AtError as exc:
            raise SmsError(f"{what}: {exc}", sent=sent) from exc


def _fields(line: str) -> list[str]:
    """The comma-separated values after 'X: ', quotes removed ('+CMTI: "SM",3' -> ['SM', '3'])."""
    _, _, rest = line.partition(":")
    return next(csv.reader([rest.strip()], skipinitialspace=True), [])


def _message_reference(lines: list[str]) -> int:
    for line in lines:
        if line.startswith("+CMGS:"):
            fields = _fields(line)
            if fields and fields[0].isdigit():
                return int(fields[0])
    raise SmsError(f"no +CMGS: <mr> in the answer {lines!r}")


def _ucs2_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def _from_ucs2(field: str) -> str:
    """A number or name under AT+CSCS="UCS2" ("002B0031...") as text; anything else unchanged."""
    if len(field) % 4 == 0 and field and _HEX.fullmatch(field) and all(
            field[i:i + 2] == "00" for i in range(0, len(field), 4)):
        return bytes.fromhex(field).decode("utf-16-be")
    return field
