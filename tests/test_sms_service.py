"""SmsService on a real AtSession over a pty; the test plays a 27.005 modem on the master side.

SmsModem below is small but answers the way 27.005 says (and real SIMCom/Quectel firmware does):
"> " prompt without a line break, +CMGS: <mr>, +CMTI / +CMT indications, +CMGR / +CMGL entries
with the PDU (or the text) on the next line, +CMS ERROR codes. It keeps a message store per
memory so that deletion and restarts can be checked.
"""

import asyncio
import functools
import os
from datetime import datetime, timedelta, timezone

import gsmmodem.pdu as oracle
import pytest

from gateway.at.session import AtSession
from gateway.clock import ManualClock
from gateway.modem.profile import Sms
from gateway.modem.sms import SmsError, SmsService, cms_meaning
from gateway.modem.sms_pdu import decode_submit, encode_deliver
from gateway.transport.serial_port import open_serial
from tests import pty_helpers

URCS = ["+CMTI:", "+CMT:", "RING", "+CSQ:"]
TS = datetime(2026, 11, 30, 18, 5, 9, tzinfo=timezone(timedelta(hours=1)))
WAIT = 3.0

run = functools.partial(pty_helpers.run, seconds=15)
until = functools.partial(pty_helpers.until, wait=WAIT)


def ucs2(text):
    return text.encode("utf-16-be").hex().upper()


class SmsModem:
    """The modem end of a pty pair: command parser, SMS store, network side."""

    def __init__(self, *, echo=False, empty_read="OK"):
        self.master, self._slave, self.path = pty_helpers.open_raw_pty()
        self.echo = echo
        self.empty_read = empty_read         # what AT+CMGR on an empty index answers
        self.commands = []
        self.mode = 0
        self.charset = "IRA"
        self.csmp = None
        self.mem1 = "SM"
        self.store = {"SM": {}, "ME": {}}    # index -> [stat, pdu or (oa, scts, text)]
        self.sent = []                       # (command, body) of each AT+CMGS
        self.mr = 40
        self.send_errors = {}                # n-th AT+CMGS (1-based) -> +CMS ERROR code
        self.silent_prompt = False           # never send "> " (a wedged modem)
        self._buf = bytearray()
        self._body_for = None                # the AT+CMGS awaiting its body
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def close(self):
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        if self._slave is not None:
            os.close(self._slave)

    def write(self, text):
        os.write(self.master, text.encode())

    def reply(self, *lines):
        self.write("".join(f"\r\n{line}\r\n" for line in lines))

    # network side ---------------------------------------------------------------------------

    def put(self, mem, record, stat=0):
        index = next(i for i in range(1, 100) if i not in self.store[mem])
        self.store[mem][index] = [stat, record]
        return index

    def receive(self, sender, text, *, reference=0, mem="SM", order=None, indicate=True):
        pdus = encode_deliver(sender, text, TS, reference=reference)
        indexes = []
        for i in order or range(len(pdus)):
            index = self.put(mem, pdus[i])
            indexes.append(index)
            if indicate:
                self.reply(f'+CMTI: "{mem}",{index}')
        return indexes

    # command side ---------------------------------------------------------------------------

    def _readable(self):
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        self._buf += data
        while True:
            if self._body_for is not None:
                end = next((i for i, b in enumerate(self._buf) if b in (0x1A, 0x1B)), None)
                if end is None:
                    return
                body, stop = bytes(self._buf[:end]).decode(), self._buf[end]
                del self._buf[:end + 1]
                cmd, self._body_for = self._body_for, None
                if self.echo:
                    self.write(body)
                if stop == 0x1A:
                    self._sent(cmd, body)
                continue
            if b"\r" not in self._buf:
                return
            line, _, rest = bytes(self._buf).partition(b"\r")
            self._buf[:] = rest
            cmd = line.decode().strip()
            if cmd:
                if self.echo:
                    self.write(cmd + "\r")
                self.commands.append(cmd)
                self._command(cmd)

    def _command(self, cmd):
        up = cmd.upper()
        if up == "AT":
            return self.reply("OK")
        if up.startswith("AT+CMGF="):
            self.mode = int(cmd[8:])
            return self.reply("OK")
        if up.startswith(("AT+CNMI=", "AT+CSMP=")):
            if up.startswith("AT+CSMP="):
                self.csmp = cmd[8:]
            return self.reply("OK")
        if up.startswith("AT+CSCS="):
            self.charset = cmd[8:].strip('"')
            return self.reply("OK")
        if up == "AT+CPMS?":
            used = ",".join(f'"{self.mem1 if i == 0 else "SM"}",{len(self.store["SM"])},30'
                            for i in range(3))
            return self.reply(f"+CPMS: {used}", "OK")
        if up.startswith("AT+CPMS="):
            self.mem1 = cmd[8:].split(",")[0].strip('"')
            n = len(self.store[self.mem1])
            return self.reply(f"+CPMS: {n},30,{n},30,{n},30", "OK")
        if up.startswith("AT+CMGR="):
            entry = self.store[self.mem1].get(int(cmd[8:]))
            if entry is None:
                return self.reply(self.empty_read)
            lines = self._entry(None, entry)
            entry[0] = 1
            return self.reply(*lines, "OK")
        if up.startswith("AT+CMGL"):
            lines = []
            for index, entry in sorted(self.store[self.mem1].items()):
                lines += self._entry(index, entry)
                if entry[0] == 0:
                    entry[0] = 1
            return self.reply(*lines, "OK")
        if up.startswith("AT+CMGD="):
            self.store[self.mem1].pop(int(cmd[8:]), None)
            return self.reply("OK")
        if up.startswith("AT+CMGS="):
            self._body_for = cmd
            if not self.silent_prompt:
                self.write("\r\n> ")
            return None
        return self.reply("ERROR")

    def _entry(self, index, entry):
        stat, record = entry
        head = "+CMGL: " if index is not None else "+CMGR: "
        at = f"{index}," if index is not None else ""
        if self.mode == 0:
            if isinstance(record, tuple):
                raise AssertionError("text record listed in PDU mode")
            length = len(record) // 2 - 1 - int(record[:2], 16)
            return [f"{head}{at}{stat},,{length}", record]
        oa, scts, text = record
        names = ["REC UNREAD", "REC READ", "STO UNSENT", "STO SENT"]
        if self.charset == "UCS2":
            oa, text = ucs2(oa), ucs2(text)
        return [f'{head}{at}"{names[stat]}","{oa}",,"{scts}"', text]

    def _sent(self, cmd, body):
        self.sent.append((cmd, body))
        code = self.send_errors.get(len(self.sent))
        if code is not None:
            return self.reply(f"+CMS ERROR: {code}")
        if self.mode == 0:
            decode_submit(body, tpdu_length=int(cmd[8:]))    # the network would refuse junk
        self.mr += 1
        self.reply(f"+CMGS: {self.mr}", "OK")


class Rig:
    """Modem, session and service, started; `got` collects delivered messages."""

    def __init__(self, modem, session, sms, got):
        self.modem, self.session, self.sms, self.got = modem, session, sms, got


async def rig(modem=None, *, setup=True, handler=None, **kwargs):
    modem = modem or SmsModem()
    link = await open_serial(modem.path)
    session = AtSession(link, URCS)
    await session.start()
    got = []
    sms = SmsService(session, on_message=handler or got.append, command_timeout=2.0, **kwargs)
    session.add_urc_listener(sms.handle_urc)
    if setup:
        await sms.setup()
    return Rig(modem, session, sms, got)


async def stop(r):
    await r.sms.close()
    await r.session.close()
    r.modem.close()


# -- setup ----------------------------------------------------------------------------------

def test_setup_sends_mode_cnmi_and_storage_query():
    async def scenario():
        r = await rig(cnmi="AT+CNMI=2,1,0,2,0", storage="SM")
        assert r.modem.commands == ["AT+CMGF=0", "AT+CNMI=2,1,0,2,0", 'AT+CPMS="SM","SM","SM"',
                                    "AT+CPMS?", "AT+CMGL=4"]
        await stop(r)
    run(scenario)


def test_from_profile_takes_the_profiles_cnmi():
    async def scenario():
        modem = SmsModem()
        link = await open_serial(modem.path)
        session = AtSession(link, URCS)
        await session.start()
        table = Sms(supported=True, mode="text",
                    setup=("AT+CMGF=1", "AT+CNMI=2,1,0,2,0", 'AT+CPMS="SM","SM","SM"'))
        sms = SmsService.from_profile(session, table)
        await sms.setup()
        assert modem.commands[:4] == ["AT+CMGF=1", "AT+CNMI=2,1,0,2,0", 'AT+CPMS="SM","SM","SM"',
                                      'AT+CSCS="UCS2"']
        await sms.close()
        await session.close()
        modem.close()
    run(scenario)


# -- sending in PDU mode --------------------------------------------------------------------

def test_send_single_pdu():
    async def scenario():
        r = await rig()
        refs = await r.sms.send("+4915112345678", "Hello from callgate @ 10€")
        assert refs == [41]
        [(cmd, body)] = r.modem.sent
        assert cmd == f"AT+CMGS={len(body) // 2 - 1}"
        theirs = oracle.decodeSmsPdu(body)
        assert (theirs["number"], theirs["text"]) == ("+4915112345678", "Hello from callgate @ 10€")
        await stop(r)
    run(scenario)


def test_send_multipart_japanese_and_emoji_with_echo_on():
    async def scenario():
        r = await rig(SmsModem(echo=True))
        text = "日本語のテキスト😀" * 15          # 150 UTF-16 code units
        refs = await r.sms.send("+81312345678", text)
        assert refs == [41, 42, 43]
        parts = [decode_submit(body, tpdu_length=int(cmd[8:])) for cmd, body in r.modem.sent]
        assert "".join(p.text for p in parts) == text
        assert [p.concat.seq for p in parts] == [1, 2, 3]
        assert len({p.concat.reference for p in parts}) == 1
        # a second message gets a new concatenation reference
        await r.sms.send("+81312345678", text)
        assert decode_submit(r.modem.sent[3][1]).concat.reference != parts[0].concat.reference
        await stop(r)
    run(scenario)


def test_cms_error_names_code_meaning_and_part():
    async def scenario():
        r = await rig()
        r.modem.send_errors = {2: 350}
        with pytest.raises(SmsError) as info:
            await r.sms.send("+4915112345678", "x" * 200)
        err = info.value
        assert err.code == 350 and "rejected" in err.meaning and err.sent == [41]
        assert "part 2 of 2" in str(err) and "+CMS ERROR 350" in str(err)
        # the session is still usable
        assert await r.sms.send("+4915112345678", "again") == [42]
        await stop(r)
    run(scenario)


def test_missing_prompt_times_out_and_the_port_recovers():
    async def scenario():
        r = await rig(send_timeout=0.5)
        r.modem.silent_prompt = True
        with pytest.raises(SmsError, match="no final result code within 0.5 s"):
            await r.sms.send("+4915112345678", "hello")
        assert r.modem.sent == []                  # ESC cancelled the input, nothing went out
        r.modem.silent_prompt = False
        assert await r.sms.send("+4915112345678", "hello") == [41]
        await stop(r)
    run(scenario)


def test_bad_number_is_refused_before_the_modem_is_asked():
    async def scenario():
        r = await rig()
        before = list(r.modem.commands)
        with pytest.raises(SmsError, match="'x' at index 3"):
            await r.sms.send("+49x5", "hi")
        assert r.modem.commands == before
        await stop(r)
    run(scenario)


# -- receiving ------------------------------------------------------------------------------

def test_cmti_reads_delivers_and_deletes():
    async def scenario():
        r = await rig()
        r.modem.receive("+4917012345", "Grüße aus Köln")
        await until(lambda: r.got, "message delivered")
        [m] = r.got
        assert (m.sender, m.text, m.timestamp, m.parts, m.missing) == \
            ("+4917012345", "Grüße aus Köln", TS, 1, ())
        await until(lambda: not r.modem.store["SM"], "message deleted")
        assert "AT+CMGR=1" in r.modem.commands and "AT+CMGD=1" in r.modem.commands
        await stop(r)
    run(scenario)


def test_multipart_parts_stay_stored_until_complete():
    async def scenario():
        r = await rig()
        text = "Привет, мир! " * 12 + "🎉"
        pdus = encode_deliver("+79161234567", text, TS, reference=99)
        assert len(pdus) == 3
        for i in (2, 0):
            r.modem.reply(f'+CMTI: "SM",{r.modem.put("SM", pdus[i])}')
        await until(lambda: r.modem.commands.count("AT+CMGR=2") == 1, "second part read")
        await asyncio.sleep(0.1)
        assert r.got == [] and len(r.modem.store["SM"]) == 2    # nothing deleted yet
        r.modem.reply(f'+CMTI: "SM",{r.modem.put("SM", pdus[1])}')
        await until(lambda: r.got, "message delivered")
        assert r.got[0].text == text and r.got[0].parts == 3
        await until(lambda: not r.modem.store["SM"], "all parts deleted")
        await stop(r)
    run(scenario)


def test_messages_stored_while_down_are_delivered_at_setup():
    async def scenario():
        modem = SmsModem()
        modem.receive("+331234", "first", indicate=False)
        modem.receive("Bank", "second", indicate=False)          # alphanumeric sender
        modem.put("SM", encode_deliver("+331234", "x", TS)[0][:-6])   # truncated: undecodable
        modem.put("SM", "0011000B913366666666F60000AA01C8", stat=2)  # our own unsent SUBMIT
        r = await rig(modem)
        assert [(m.sender, m.text) for m in r.got] == [("+331234", "first"), ("Bank", "second")]
        assert sorted(modem.store["SM"]) == [3, 4]                 # undecodable and unsent kept
        await stop(r)
    run(scenario)


def test_failing_handler_leaves_message_for_the_next_start():
    async def scenario():
        calls = []

        def broken(msg):
            calls.append(msg)
            raise RuntimeError("flow crashed")
        r = await rig(handler=broken)
        r.modem.receive("+331234", "keep me")
        await until(lambda: calls, "handler called")
        await asyncio.sleep(0.1)
        assert len(r.modem.store["SM"]) == 1                      # not deleted
        await r.sms.close()
        await r.session.close()
        r2 = await rig(r.modem)                                   # the daemon restarts
        assert [m.text for m in r2.got] == ["keep me"]
        assert not r2.modem.store["SM"]
        await stop(r2)
    run(scenario)


def test_async_handler_is_awaited():
    async def scenario():
        seen = []

        async def handler(msg):
            await asyncio.sleep(0.01)
            seen.append(msg.text)
        r = await rig(handler=handler)
        r.modem.receive("+1555", "async")
        await until(lambda: seen == ["async"], "async handler")
        await until(lambda: not r.modem.store["SM"], "deleted after the handler")
        await stop(r)
    run(scenario)


def test_cmti_in_another_storage_switches_cpms():
    async def scenario():
        r = await rig()
        r.modem.receive("+1555", "in ME", mem="ME")
        await until(lambda: r.got, "message delivered")
        assert 'AT+CPMS="ME"' in r.modem.commands
        assert r.got[0].text == "in ME" and not r.modem.store["ME"]
        await stop(r)
    run(scenario)


def test_cmt_direct_delivery():
    async def scenario():
        r = await rig()
        [pdu] = encode_deliver("+4412345", "direct 😀", TS)
        r.modem.reply(f"+CMT: ,{len(pdu) // 2 - 1}")
        r.modem.reply(pdu)
        await until(lambda: r.got, "direct message")
        assert (r.got[0].sender, r.got[0].text) == ("+4412345", "direct 😀")
        await stop(r)
    run(scenario)


def test_empty_index_and_cms_error_on_read_are_survived():
    async def scenario():
        r = await rig(SmsModem(empty_read="+CMS ERROR: 321"))
        r.modem.reply('+CMTI: "SM",7')                      # nothing there
        r.modem.receive("+1555", "after")
        await until(lambda: r.got, "next message")
        assert r.got[0].text == "after"
        await stop(r)
    run(scenario)


def test_incomplete_multipart_comes_out_after_the_wait():
    async def scenario():
        clock = ManualClock()
        r = await rig(clock=clock, reassembly_wait=600)
        pdus = encode_deliver("+1555", "a" * 200 + "b" * 200, TS, reference=5)
        r.modem.reply(f'+CMTI: "SM",{r.modem.put("SM", pdus[0])}')
        await until(lambda: "AT+CMGR=1" in r.modem.commands, "part read")
        await asyncio.sleep(0.05)
        clock.advance(599)
        await asyncio.sleep(0.05)
        assert r.got == []
        clock.advance(1)
        await until(lambda: r.got, "incomplete message")
        assert r.got[0].missing == (2, 3) and r.got[0].text == "a" * 153
        await until(lambda: not r.modem.store["SM"], "part deleted")
        await stop(r)
    run(scenario)


# -- text mode ------------------------------------------------------------------------------

def test_text_mode_send_plain_and_unicode():
    async def scenario():
        r = await rig(mode="text")
        assert r.modem.commands[:3] == ["AT+CMGF=1", "AT+CNMI=2,1,0,0,0", 'AT+CSCS="UCS2"']
        assert await r.sms.send("+4915112345678", "Meeting at 10, room 4.") == [41]
        assert r.modem.sent[-1] == ('AT+CMGS="+4915112345678"', "Meeting at 10, room 4.")
        assert r.modem.csmp == "17,167,0,0"
        await r.sms.send("+4915112345678", "会議は10時")
        assert r.modem.sent[-1] == (f'AT+CMGS="{ucs2("+4915112345678")}"', ucs2("会議は10時"))
        assert r.modem.csmp == "17,167,0,8" and r.modem.charset == "UCS2"
        await r.sms.send("+4915112345678", "price: 5$ @home")     # GSM-7, but not ASCII-safe
        assert r.modem.sent[-1][1] == ucs2("price: 5$ @home") and r.modem.csmp == "17,167,0,0"
        with pytest.raises(SmsError, match="needs 2 parts, use PDU mode"):
            await r.sms.send("+4915112345678", "x" * 161)
        assert len(r.modem.sent) == 3
        await stop(r)
    run(scenario)


def test_text_mode_receive_stored_and_indicated():
    async def scenario():
        modem = SmsModem()
        modem.put("SM", ("+4917012345", "26/11/30,18:05:09+04", "stored while down"))
        r = await rig(modem, mode="text")
        assert [(m.sender, m.text, m.timestamp) for m in r.got] == \
            [("+4917012345", "stored while down", TS)]
        assert 'AT+CMGL="ALL"' in modem.commands and not modem.store["SM"]
        index = modem.put("SM", ("+8190123", "26/11/30,18:05:09-20", "こんにちは 😀\nline 2"))
        modem.reply(f'+CMTI: "SM",{index}')
        await until(lambda: len(r.got) == 2, "indicated message")
        assert r.got[1].text == "こんにちは 😀\nline 2" and r.got[1].sender == "+8190123"
        assert r.got[1].timestamp.utcoffset() == timedelta(hours=-5)
        await stop(r)
    run(scenario)


def test_cms_meanings():
    assert cms_meaning(322) == "memory full"
    assert cms_meaning(330) == "SMS centre address unknown"
    assert cms_meaning(530) == "manufacturer specific"
    assert cms_meaning("SIM busy") == "SIM busy"


# -- against the HIL GSM emulator (hil/gsm) ------------------------------------------------

EMULATOR_URCS = ["+CMTI:", "+CMT:", "RING", "SMS DONE", "PB DONE", "+CPIN:", "RDY"]


def on_emulator(scenario, **service_kwargs):
    from hil.gsm.simcom import SimcomSim7600
    emulator = SimcomSim7600()
    emulator.start()

    async def main():
        link = await open_serial(emulator.at_port)
        session = AtSession(link, EMULATOR_URCS)
        await session.start()
        got = []
        sms = SmsService(session, on_message=got.append, **service_kwargs)
        session.add_urc_listener(sms.handle_urc)
        try:
            await scenario(emulator, sms, got)
        finally:
            await sms.close()
            await session.close()
    try:
        run(main)
    finally:
        emulator.stop()


def test_emulator_pdu_both_ways_with_messages_stored_while_down():
    async def scenario(emulator, sms, got):
        emulator.receive_sms("+331234", "waiting since boot", timestamp=TS)
        assert await sms.setup() == 1
        assert [(m.sender, m.text, m.timestamp) for m in got] == [("+331234", "waiting since boot", TS)]
        text = "日本語のテキスト😀" * 15
        refs = await sms.send("+81312345678", text)
        assert len(refs) == 3 and len(set(refs)) == 3
        [sent] = emulator.sent_sms(joined=True)
        assert (sent["number"], sent["text"], sent["complete"]) == ("+81312345678", text, True)
        long_text = "Grüße [€] " * 40            # 520 septets: 4 parts of at most 152
        emulator.receive_sms("Bank", long_text, reference=300)
        await until(lambda: len(got) == 2, "multipart message")
        assert (got[1].sender, got[1].text, got[1].parts) == ("Bank", long_text, 4)
        await until(lambda: not emulator.stored_sms(), "storage emptied")
    on_emulator(scenario)


def test_emulator_network_rejection_and_direct_delivery():
    async def scenario(emulator, sms, got):
        await sms.setup()
        emulator.fail_next_sms(350)
        with pytest.raises(SmsError) as info:
            await sms.send("+4915112345678", "hello")
        assert info.value.code == 350 and "rejected" in str(info.value)
        assert len(await sms.send("+4915112345678", "hello")) == 1
        assert emulator.receive_sms("+4412345", "direct 😀") == []     # +CMT, nothing stored
        await until(lambda: got, "direct delivery")
        assert got[0].text == "direct 😀"
    on_emulator(scenario, cnmi="AT+CNMI=2,2,0,0,0")


def test_emulator_text_mode_both_ways():
    async def scenario(emulator, sms, got):
        await sms.setup()
        await sms.send("+4915112345678", "Plain text, 10 min.")
        await sms.send("+4915112345678", "会議は10時 😀")
        sent = emulator.sent_sms()
        assert [(s["mode"], s["text"], s["encoding"]) for s in sent] == \
            [("text", "Plain text, 10 min.", "gsm7"), ("text", "会議は10時 😀", "ucs2")]
        emulator.receive_sms("+8190123", "こんにちは", timestamp=TS)
        await until(lambda: got, "text mode message")
        assert (got[0].sender, got[0].text, got[0].timestamp) == ("+8190123", "こんにちは", TS)
    on_emulator(scenario, mode="text")
