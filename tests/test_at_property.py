"""Property tests of the AT engine (issue 4): whatever the modem's bytes look like, the session never
crashes, never loses a command's final result, never hands a URC to a response (or a response line
to the URC listeners), and never keeps a command waiting past its timeout.

The session runs over MemoryLink, an in-memory implementation of the serial link interface (read,
write, drain, close), and a ScriptedModem that answers each written command with the bytes the
example prescribes, cut into random chunks. Time is a ManualClock that the driver moves in small
steps only while a command is still waiting, so no example sleeps.
"""

import asyncio
import collections
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.at.errors import AtCommandError, AtError, AtTimeout, CmeError, CmsError
from gateway.at.framer import MAX_LINE_BYTES
from gateway.at.session import AtResponse, AtSession
from gateway.clock import ManualClock

URC_PREFIXES = ["RING", "+CRING:", "+CLIP:", "+CLCC:", "VOICE CALL:", "+RXDTMF:", "^RSSI:",
                "+CMTI:", "NO CARRIER", "BUSY", "NO ANSWER", "MISSED_CALL:"]
CALL_FAILURES = ["NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"]
STEP = 1 / 16         # the driver's clock step while a command waits (exact in binary)
SPINS = 25             # event-loop turns that let every ready task run before the clock moves
# Line breaks, noise and chunk boundaries come from a Random seeded by the example (fast to draw,
# and a failing example is replayed exactly from its seed).
SEEDS = st.integers(0, 2**32 - 1)
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Bytes that can never form text: C0 controls except TAB (becomes a space), CR and LF (line
# breaks), DEL, lone UTF-8 continuation bytes and bytes that never occur in UTF-8. NUL included.
NOISE = bytes(b for b in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xC0), *range(0xF8, 0x100)]
              if b not in (0x09, 0x0A, 0x0D))
PREFIXES = [b"", b"\r\n", b"\r\r\n", b"\n", b"\r\n\r\n"]
SUFFIXES = [b"\r\n", b"\r\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\r"]
TEXT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789 :,+\"#.-_=/()"


def is_final(text, call_control):
    if text in ("OK", "ERROR", "COMMAND NOT SUPPORT") or text.startswith(("+CME ERROR:",
                                                                          "+CMS ERROR:")):
        return True
    return call_control and (text in CALL_FAILURES or text == "CONNECT"
                             or text.startswith("CONNECT "))


def plain_text(command):
    """Response text that is neither a final, nor a URC, nor the command's echo."""
    def fine(text):
        return (text and not is_final(text, call_control=True)
                and not text.startswith(tuple(URC_PREFIXES))
                and text.upper() not in (command.upper(), "AT")
                and not text.upper().startswith(("CONNECT", "NO CARRIER")))
    return st.text(TEXT, min_size=1, max_size=40).map(str.strip).filter(fine)


# Longer than the framer keeps: the response gets the first MAX_LINE_BYTES of it.
long_lines = st.builds(lambda n, c: c * n, st.integers(MAX_LINE_BYTES - 2, MAX_LINE_BYTES * 2),
                       st.sampled_from("XYZ7"))


def info_lines(command):
    if command == "AT+CLCC":          # its own prefix is also a URC prefix: the command wins
        own = st.builds(lambda i, n: f'+CLCC: {i},1,4,0,0,"{n}",129', st.integers(1, 7),
                        st.from_regex(r"\+?[0-9]{3,12}", fullmatch=True))
        return st.one_of(plain_text(command), own)
    return st.one_of(plain_text(command), long_lines)


def urc_lines(call_control):
    fixed = ["RING", "+CRING: VOICE", "VOICE CALL: BEGIN", "VOICE CALL: END: 000012"]
    if not call_control:
        fixed += ["NO CARRIER", "BUSY", "NO ANSWER"]
    return st.one_of(
        st.sampled_from(fixed),
        st.builds(lambda d: f"+RXDTMF: {d}", st.sampled_from("0123456789*#ABCD")),
        st.builds(lambda n: f'+CLIP: "{n}",129,"",0,"",0', st.from_regex(r"[0-9]{3,12}",
                                                                          fullmatch=True)),
        st.builds(lambda n: f"^RSSI:{n}", st.integers(0, 31)),
        st.builds(lambda n: f'+CMTI: "SM",{n}', st.integers(0, 40)),
    )


COMMANDS = [("AT+CGMI", False), ("ATI", False), ("AT+CPIN?", False), ("AT+COPS?", False),
            ("AT+CLCC", False), ("AT+CSQ", False), ("ATD+15551230001;", True), ("ATA", True)]
FINALS = ["OK", "OK", "OK", "ERROR", "+CME ERROR: 10", "+CME ERROR: SIM not inserted",
          "+CMS ERROR: 321", "COMMAND NOT SUPPORT"]
CALL_FINALS = ["CONNECT", "CONNECT 9600", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"]


# Built once: strategies made inside a composite draw are re-validated on every example.
INFO = {command: st.lists(info_lines(command), max_size=4) for command, _ in COMMANDS}
URCS = {cc: st.lists(urc_lines(cc), max_size=3) for cc in (False, True)}
IDLE_URCS = st.lists(urc_lines(False), max_size=2)


@st.composite
def exchanges(draw):
    command, call_control = draw(st.sampled_from(COMMANDS))
    info = draw(INFO[command])
    urcs = draw(URCS[call_control])
    order = draw(st.permutations(["i"] * len(info) + ["u"] * len(urcs)))
    finals = FINALS + (CALL_FINALS if call_control else [])
    silent = draw(st.integers(0, 4)) == 0
    timeout = draw(st.sampled_from([1.0, 2.0, 3.0]))
    return {
        "command": command, "call_control": call_control, "info": info, "urcs": urcs,
        "order": order, "final": None if silent else draw(st.sampled_from(finals)),
        "echo": draw(st.booleans()), "timeout": timeout,
        "idle_urcs": draw(IDLE_URCS),
        # where the late final of a silent exchange comes: not at all, while idle, or only once
        # something new has been written (the known bug), before the answer to that
        "late": draw(st.sampled_from(["none", "idle", "next_write"])) if silent else "none",
        "late_final": draw(st.sampled_from(FINALS)),
        "drop_probe": silent and draw(st.booleans()),
    }


# -- the modem's side ---------------------------------------------------------------------------

class MemoryLink:
    """The SerialLink interface over an in-memory queue of chunks."""

    def __init__(self):
        self.path = "mem0"
        self.written = bytearray()
        self.on_write = None
        self._chunks = collections.deque()
        self._waiter = None
        self.closed = False

    def feed(self, chunks):
        self._chunks.extend(c for c in chunks if c)
        self._wake()

    async def read(self):
        while not self._chunks:
            if self.closed:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._chunks.popleft()

    def write(self, data):
        if self.closed:
            return
        self.written += data
        if self.on_write is not None:
            self.on_write(bytes(data))

    async def drain(self):
        return None

    def close(self):
        self.closed = True
        self._wake()

    def _wake(self):
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Renderer:
    """Turns lines into modem bytes: random line breaks, glued noise, random chunking."""

    def __init__(self, rnd):
        self.rnd = rnd

    def line(self, text, noisy=True):
        rnd = self.rnd
        data = text.encode()
        if noisy and len(data) < MAX_LINE_BYTES // 2:
            if rnd.random() < 0.3:
                data = self.noise() + data
            if rnd.random() < 0.3:
                cut = rnd.randint(0, len(data))
                data = data[:cut] + self.noise() + data[cut:]
        out = rnd.choice(PREFIXES) + data + rnd.choice(SUFFIXES)
        if rnd.random() < 0.15:                        # a line of noise only
            out += self.noise() + rnd.choice(SUFFIXES)
        return out

    def noise(self):
        return bytes(self.rnd.choice(NOISE) for _ in range(self.rnd.randint(1, 8)))

    def chunks(self, data):
        rnd, out, pos = self.rnd, [], 0
        style = rnd.choice(["bytes", "small", "large", "whole"])
        if style == "whole":
            return [data]
        if style == "bytes":
            return [data[i:i + 1] for i in range(len(data))]
        top = 8 if style == "small" else 300
        while pos < len(data):
            size = rnd.randint(1, top)
            out.append(data[pos:pos + size])
            pos += size
        return out


class ScriptedModem:
    """Answers each written command with the bytes of the current exchange; answers probes."""

    def __init__(self, link, render, expected_urcs):
        self.link, self.render, self.expected_urcs = link, render, expected_urcs
        self.exchange = None           # what the next written command gets
        self.commands = []             # command lines seen, probes included
        self.stale = b""               # sent on the next write, before the answer to it
        self.drop_next_probe = False
        self._rx = bytearray()
        link.on_write = self._on_write

    def urc(self, text):
        self.expected_urcs.append(text)
        return self.render.line(text)

    def _on_write(self, data):
        self._rx += data
        while b"\r" in self._rx:
            cut = self._rx.index(b"\r")
            line = bytes(self._rx[:cut]).replace(b"\x1b", b"").decode()
            del self._rx[: cut + 1]
            if not line:
                continue
            self.commands.append(line)
            if self.stale and not (line == "AT" and self.drop_next_probe):
                self.link.feed(self.render.chunks(self.stale))
                self.stale = b""
            if line == "AT":
                self._probe()
            else:
                assert self.exchange is not None, f"unexpected command {line!r}"
                assert line == self.exchange["command"], (line, self.exchange["command"])
                self.link.feed(self.render.chunks(self.response(self.exchange)))
                self.exchange = None

    def _probe(self):
        if self.drop_next_probe:
            self.drop_next_probe = False
            return
        data = b""
        if self.render.rnd.random() < 0.3:
            data += self.urc("+RXDTMF: 1")
        data += self.render.line("AT") if self.render.rnd.random() < 0.3 else b""   # echo
        data += self.render.line("OK")
        self.link.feed(self.render.chunks(data))

    def response(self, ex):
        render = self.render
        out = render.line(ex["command"]) if ex["echo"] else b""
        info, urcs = iter(ex["info"]), iter(ex["urcs"])
        for kind in ex["order"]:
            if kind == "i":
                text = next(info)
                out += render.line(text, noisy=len(text) < MAX_LINE_BYTES)
            else:
                out += self.urc(next(urcs))
        if ex["final"] is not None:
            out += render.line(ex["final"])
        return out


def expected_lines(info):
    return [text[:MAX_LINE_BYTES].strip() if len(text) > MAX_LINE_BYTES else text
            for text in info]


# -- the driver ---------------------------------------------------------------------------------

async def spin():
    for _ in range(SPINS):
        await asyncio.sleep(0)


async def drive(clock, task, timeout):
    """Move the clock while `task` waits; fail if it is still waiting past `timeout`."""
    start = clock.monotonic()
    while True:
        await spin()
        if task.done():
            return clock.monotonic() - start
        waited = clock.monotonic() - start
        assert waited <= timeout + 1e-6, f"command still waiting {waited:.2f} s, timeout {timeout}"
        clock.advance(STEP)


def check_outcome(ex, outcome, waited):
    command, lines = ex["command"], expected_lines(ex["info"])
    final = ex["final"]
    if final is None:
        assert isinstance(outcome, AtTimeout) and not outcome.resync_failed, outcome
        assert outcome.partial == lines
        assert waited >= ex["timeout"] - 1e-6
        return
    ok = final == "OK" or (ex["call_control"] and final.startswith("CONNECT"))
    if ok:
        assert outcome == AtResponse(command, lines, final)
        return
    assert isinstance(outcome, AtCommandError), outcome
    assert (outcome.command, outcome.final, outcome.lines) == (command, final, lines)
    if final.startswith("+CME"):
        assert isinstance(outcome, CmeError)
    if final.startswith("+CMS"):
        assert isinstance(outcome, CmsError)


async def run_command(session, clock, ex):
    task = asyncio.ensure_future(session.command(ex["command"], ex["timeout"],
                                                 call_control=ex["call_control"]))
    waited = await drive(clock, task, ex["timeout"])
    try:
        return task.result(), waited
    except AtError as exc:
        return exc, waited


@given(script=st.lists(exchanges(), min_size=1, max_size=5), seed=SEEDS)
@PROPERTY
def test_interleaved_streams_keep_every_final_and_every_urc(script, seed):
    async def scenario():
        rnd = random.Random(seed)
        clock = ManualClock()
        link = MemoryLink()
        expected_urcs = []
        modem = ScriptedModem(link, Renderer(rnd), expected_urcs)
        session = AtSession(link, URC_PREFIXES, clock=clock)
        urcs = []
        session.add_urc_listener(urcs.append)
        await session.start()
        late, drop_probe = None, False
        for ex in script:
            if late is not None and late[0] == "next_write":
                modem.stale = late[1]
            elif late is not None and late[0] == "idle":
                link.feed(modem.render.chunks(late[1]))
            # a dropped probe costs RESYNC_PROBE_INTERVAL: only within a budget that allows it
            modem.drop_next_probe = drop_probe and ex["timeout"] >= 2.0
            idle = b"".join(modem.urc(text) for text in ex["idle_urcs"])
            link.feed(modem.render.chunks(idle))
            await spin()
            modem.exchange = ex
            outcome, waited = await run_command(session, clock, ex)
            assert modem.exchange is None, "the command was never written"
            check_outcome(ex, outcome, waited)
            late, drop_probe = None, False
            if ex["final"] is None:
                assert not session.in_sync
                drop_probe = ex["drop_probe"]
                if ex["late"] != "none":
                    late = (ex["late"], modem.render.line(ex["late_final"]))
        await spin()
        assert urcs == expected_urcs
        assert session.healthy and not session.closed
        await session.close()
    asyncio.run(scenario())


@given(noise=st.lists(st.binary(max_size=300), max_size=6), seed=SEEDS,
       timeout=st.sampled_from([1.0, 2.0]))
@PROPERTY
def test_random_bytes_never_break_the_session(noise, seed, timeout):
    async def scenario():
        rnd = random.Random(seed)
        clock = ManualClock()
        link = MemoryLink()
        modem = ScriptedModem(link, Renderer(rnd), [])
        session = AtSession(link, URC_PREFIXES, clock=clock)
        urcs = []
        session.add_urc_listener(urcs.append)
        await session.start()
        link.feed(noise)                                  # power-up garbage while idle
        await spin()
        modem.exchange = {"command": "AT+CSQ", "echo": False, "order": [], "info": [],
                          "urcs": [], "final": None}
        task = asyncio.ensure_future(session.command("AT+CSQ", timeout))
        await spin()
        link.feed(list(reversed(noise)))                  # garbage as the "answer"
        await drive(clock, task, timeout)
        exc = task.exception()
        assert exc is None or isinstance(exc, AtError), exc
        assert not session.closed
        for line in urcs:
            assert line and line == line.strip() and not any(ord(c) < 0x20 for c in line)
        # the session is still usable: it resyncs and runs the next command faithfully
        resync = asyncio.ensure_future(session.resync(2.0))
        await drive(clock, resync, 2.0)
        assert resync.result() is True
        modem.exchange = {"command": "AT+CGMI", "echo": True, "order": ["i"],
                          "info": ["SIMCOM INCORPORATED"], "urcs": [], "final": "OK"}
        task = asyncio.ensure_future(session.command("AT+CGMI", timeout))
        await drive(clock, task, timeout)
        assert task.result() == AtResponse("AT+CGMI", ["SIMCOM INCORPORATED"], "OK")
        await session.close()
    asyncio.run(scenario())


def dle_shield(audio):
    return audio.replace(b"\x10", b"\x10\x10")


class DleReceiver:
    """A V.253 receive-stream consumer: keeps the shielded bytes, ends after <DLE><ETX>."""

    def __init__(self):
        self.raw = bytearray()
        self._dle = False

    def __call__(self, chunk):
        for i, byte in enumerate(chunk):
            self.raw.append(byte)
            if self._dle:
                self._dle = False
                if byte == 0x03:
                    return i + 1
            elif byte == 0x10:
                self._dle = True
        return None


@given(audio=st.binary(max_size=2000), after=st.lists(urc_lines(True), max_size=2),
       seed=SEEDS)
@PROPERTY
def test_data_mode_passes_every_byte_raw_and_finds_the_final_after_the_stream(audio, after, seed):
    async def scenario():
        rnd = random.Random(seed)
        clock = ManualClock()
        link = MemoryLink()
        render = Renderer(rnd)
        expected_urcs = []
        modem = ScriptedModem(link, render, expected_urcs)
        session = AtSession(link, URC_PREFIXES, clock=clock)
        urcs = []
        session.add_urc_listener(urcs.append)
        await session.start()
        stream = dle_shield(audio)
        receiver = DleReceiver()
        # CONNECT, the stream, its end, URCs and the final: one byte string, chunked at random
        # V.250 verbose framing <CR><LF>CONNECT<CR><LF> (or a bare LF): the stream starts right after
        connect = rnd.choice(PREFIXES) + render.noise() + b"CONNECT" + rnd.choice([b"\r\n", b"\n"])
        data = (connect + stream + b"\x10\x03"
                + b"".join(modem.urc(text) for text in after) + render.line("OK"))
        link.on_write = lambda written: link.feed(render.chunks(data)) if written == b"AT+VRX\r" else None
        task = asyncio.ensure_future(session.start_data("AT+VRX", receiver, 1.0))
        await drive(clock, task, 1.0)
        task.result()
        ending = asyncio.ensure_future(session.end_data(b"\x10!", 1.0, modem_ends_stream=True))
        await drive(clock, ending, 1.0)
        assert ending.result() == AtResponse("AT+VRX", [], "OK")
        assert bytes(receiver.raw) == stream + b"\x10\x03"
        assert urcs == expected_urcs
        assert not session.in_data_mode
        await session.close()
    asyncio.run(scenario())

