"""AtSession over a real SerialLink on a pseudo-terminal; the test plays the modem on the master.

PtyModem below is the only helper: it reads what the gateway wrote on the pty master and writes
modem lines back. Nothing of gateway/ is mocked.
"""

import asyncio
import contextlib
import errno
import os
import random

import pytest

from gateway.at.errors import (AtCommandError, AtDataModeError, AtError, AtLinkClosed, AtTimeout,
                               CmeError, CmsError)
from gateway.at.session import AtResponse, AtSession
from gateway.transport.serial_port import SerialLink, SerialOpenError, open_serial
from tests.pty_helpers import open_raw_pty, run, until

# A subset of firmware_config/simcom_sim7600.toml [urc].prefixes, fixed here so that these tests
# stay about the session, not about the profile's current contents.
URC_PREFIXES = ["RING", "+CRING:", "+CLIP:", "+CLCC:", "VOICE CALL:", "+RXDTMF:", "NO CARRIER",
                "+CPIN:", "+CSQ:", "BUSY", "NO ANSWER", "MISSED_CALL:"]
WAIT = 2.0        # upper bound for anything that should happen "at once" over a pty


class PtyModem:
    """The modem's side of a pseudo-terminal pair."""

    def __init__(self):
        self.master, self._slave, self.path = open_raw_pty()
        self.received = bytearray()    # everything the gateway wrote
        self._unread = bytearray()
        self._arrived = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.master, self._on_readable)

    def release_slave(self):
        """Drop the test's own slave descriptor once the gateway has opened the path."""
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def _on_readable(self):
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
            return
        self.received += data
        self._unread += data
        self._arrived.set()

    async def expect(self, command):
        """Wait until the gateway wrote `command` + CR; consume it and what came before."""
        want = command.encode() + b"\r"
        async with asyncio.timeout(WAIT):
            while want not in self._unread:
                self._arrived.clear()
                await self._arrived.wait()
        del self._unread[: self._unread.index(want) + len(want)]

    async def expect_bytes(self, want):
        """Wait until the gateway wrote exactly `want` (raw, no CR added); consume it."""
        async with asyncio.timeout(WAIT):
            while want not in self._unread:
                self._arrived.clear()
                await self._arrived.wait()
        del self._unread[: self._unread.index(want) + len(want)]

    def send(self, data):
        os.write(self.master, data)

    def say(self, *lines):
        """Lines framed as a modem in verbose mode frames them: CR LF text CR LF."""
        self.send(b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines))

    def unplug(self):
        if self.master is not None:
            asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = None

    def close(self):
        self.unplug()
        self.release_slave()


class Urcs(list):
    """A URC listener that remembers what it got."""

    def __call__(self, line):
        self.append(line)

    async def wait_for(self, count):
        await until(lambda: len(self) >= count, f"{count} URCs (have {list(self)})")


@contextlib.asynccontextmanager
async def modem_session(**kwargs):
    modem = PtyModem()
    link = await open_serial(modem.path)
    modem.release_slave()
    session = AtSession(link, URC_PREFIXES, **kwargs)
    urcs = Urcs()
    session.add_urc_listener(urcs)
    await session.start()
    try:
        yield modem, session, urcs
    finally:
        await session.close()
        modem.close()


async def answer(modem, command, *lines):
    await modem.expect(command)
    modem.say(*lines)


# -- ordinary exchanges ---------------------------------------------------------------------------

def test_command_writes_cr_terminated_line_and_returns_response():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            resp, _ = await asyncio.gather(
                session.command("AT+CGMI", 1.0),
                answer(modem, "AT+CGMI", "SIMCOM INCORPORATED", "OK"))
            assert resp == AtResponse("AT+CGMI", ["SIMCOM INCORPORATED"], "OK")
            assert bytes(modem.received) == b"AT+CGMI\r"
            assert urcs == []
            assert [(d, line) for _, d, line in session.history] == [
                (">", "AT+CGMI"), ("<", "SIMCOM INCORPORATED"), ("<", "OK")]
    run(scenario)


def test_echo_of_the_command_is_dropped():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            async def echoing_modem():
                await modem.expect("ATI")
                modem.send(b"ATI\r\r\nManufacturer: SIMCOM INCORPORATED\r\n\r\nOK\r\n")
            resp, _ = await asyncio.gather(session.command("ATI", 1.0), echoing_modem())
            assert resp.lines == ["Manufacturer: SIMCOM INCORPORATED"]
            # a lingering second echo after the answer is dropped too, not passed on as a URC
            modem.send(b"ATI\r\r\n+RXDTMF: 1\r\n")
            await urcs.wait_for(1)
            assert urcs == ["+RXDTMF: 1"]
    run(scenario)


def test_commands_run_one_at_a_time():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            async def strict_modem():
                await modem.expect("AT+CGMI")
                await asyncio.sleep(0.05)   # give a second command the chance to jump the queue
                assert b"AT+CGMM" not in modem.received
                modem.say("SIMCOM INCORPORATED", "OK")
                await answer(modem, "AT+CGMM", "SIMCOM_SIM7600G-H", "OK")
            first, second, _ = await asyncio.gather(
                session.command("AT+CGMI", 1.0), session.command("AT+CGMM", 1.0), strict_modem())
            assert first.lines == ["SIMCOM INCORPORATED"]
            assert second.lines == ["SIMCOM_SIM7600G-H"]
    run(scenario)


# -- URCs and their classification ----------------------------------------------------------------

def test_urcs_inside_a_response_reach_listeners_and_leave_the_response_intact():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            resp, _ = await asyncio.gather(
                session.command("ATI", 1.0),
                answer(modem, "ATI",
                       "Manufacturer: SIMCOM INCORPORATED", "RING",
                       '+CLIP: "08020866256",129,"",0,"",0', "Model: SIMCOM_SIM7600G-H",
                       "Revision: LE20B04SIM7600G22", "+RXDTMF: 5", "OK"))
            assert resp.lines == ["Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600G-H",
                                  "Revision: LE20B04SIM7600G22"]
            assert urcs == ["RING", '+CLIP: "08020866256",129,"",0,"",0', "+RXDTMF: 5"]
    run(scenario)


def test_cr_cr_lf_framed_urc_while_idle():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            modem.send(b"\r\r\n+RXDTMF: 8\r\r\n")
            await urcs.wait_for(1)
            assert urcs == ["+RXDTMF: 8"]
    run(scenario)


def test_command_owns_its_own_prefix_but_not_other_urcs():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            resp, _ = await asyncio.gather(
                session.command("AT+CLCC", 1.0),
                answer(modem, "AT+CLCC", '+CLCC: 1,0,0,1,0,"",128', "RING",
                       '+CLCC: 2,1,4,0,0,"02154450290",129', "+CSQ: 20,99", "OK"))
            assert resp.lines == ['+CLCC: 1,0,0,1,0,"",128', '+CLCC: 2,1,4,0,0,"02154450290",129']
            assert urcs == ["RING", "+CSQ: 20,99"]
            # outside AT+CLCC the same prefix is unsolicited (AT+CLCC=1 call-state reports)
            modem.say('+CLCC: 2,1,6,0,0,"02154450290",129')
            await urcs.wait_for(3)
            assert urcs[-1] == '+CLCC: 2,1,6,0,0,"02154450290",129'
    run(scenario)


def test_cpin_query_owns_cpin_lines():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            resp, _ = await asyncio.gather(
                session.command("AT+CPIN?", 1.0), answer(modem, "AT+CPIN?", "+CPIN: READY", "OK"))
            assert resp.lines == ["+CPIN: READY"]
            assert urcs == []
    run(scenario)


def test_unknown_lines_while_idle_go_to_listeners():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            modem.say("SMS DONE", "RINGBACK TONE")   # neither in URC_PREFIXES ("RING" != RINGBACK)
            await urcs.wait_for(2)
            assert urcs == ["SMS DONE", "RINGBACK TONE"]
            resp, _ = await asyncio.gather(
                session.command("AT+CGMR", 1.0),
                answer(modem, "AT+CGMR", "RINGBACK TONE", "OK"))
            assert resp.lines == ["RINGBACK TONE"]   # inside a command it is response text
    run(scenario)


def test_garbage_before_and_inside_responses():
    async def scenario():
        rng = random.Random(1)
        noise_bytes = [b for b in [*range(0, 32), 0x7F, *range(0x80, 0xC0), *range(0xF8, 0x100)]
                       if b not in (0x0D, 0x0A)]
        noise = bytes(rng.choice(noise_bytes) for _ in range(64))
        async with modem_session() as (modem, session, urcs):
            modem.send(b"\xff\x00" + noise)          # power-up noise with no line break

            async def noisy_modem():
                await modem.expect("AT+CSQ")
                modem.send(b"\r\n\xff\x00+CSQ: 20,99\r\n\x00\xff\xfe" + noise
                           + b"\r\nO")                # a partial line: the rest comes later
                await asyncio.sleep(0.02)
                modem.send(b"K\xff\r\n")
            resp, _ = await asyncio.gather(session.command("AT+CSQ", 1.0), noisy_modem())
            assert resp.lines == ["+CSQ: 20,99"]
            assert resp.final == "OK"
            assert urcs == []
    run(scenario)


def test_listener_that_raises_does_not_stop_delivery():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            def broken(line):
                raise RuntimeError(f"listener bug on {line}")
            session.add_urc_listener(broken)
            later = Urcs()
            session.add_urc_listener(later)
            modem.say("RING", "+RXDTMF: 1")
            await later.wait_for(2)
            resp, _ = await asyncio.gather(
                session.command("AT", 1.0), answer(modem, "AT", "RING", "OK"))
            assert resp.final == "OK"
            await later.wait_for(3)
            assert urcs == later == ["RING", "+RXDTMF: 1", "RING"]
    run(scenario)


def test_unsubscribed_listener_gets_nothing_more():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            mine = Urcs()
            unsubscribe = session.add_urc_listener(mine)
            modem.say("RING")
            await mine.wait_for(1)
            unsubscribe()
            unsubscribe()                              # idempotent
            modem.say("+RXDTMF: 2")
            await urcs.wait_for(2)
            assert mine == ["RING"]
    run(scenario)


# -- failures reported by the modem ---------------------------------------------------------------

def test_cme_error_numeric_and_text():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(CmeError) as numeric:
                await asyncio.gather(session.command("AT+VTS=4", 1.0),
                                     answer(modem, "AT+VTS=4", "+CME ERROR: 3"))
            assert numeric.value.code == 3
            assert numeric.value.command == "AT+VTS=4"
            assert numeric.value.final == "+CME ERROR: 3"
            with pytest.raises(CmeError) as text:
                await asyncio.gather(session.command("AT+CPIN?", 1.0),
                                     answer(modem, "AT+CPIN?", "+CME ERROR: SIM not inserted"))
            assert text.value.code == "SIM not inserted"
            assert isinstance(text.value, AtCommandError)
    run(scenario)


def test_plain_error_cms_error_and_huawei_command_not_support():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(AtCommandError) as plain:
                await asyncio.gather(session.command("AT+CPCMREG=1", 1.0),
                                     answer(modem, "AT+CPCMREG=1", "ERROR"))
            assert type(plain.value) is AtCommandError
            assert plain.value.final == "ERROR"
            with pytest.raises(CmsError) as cms:
                await asyncio.gather(session.command("AT+CMGR=1", 1.0),
                                     answer(modem, "AT+CMGR=1", "+CMS ERROR: 321"))
            assert cms.value.code == 321
            with pytest.raises(AtCommandError) as huawei:
                await asyncio.gather(session.command("AT+WIND?", 1.0),
                                     answer(modem, "AT+WIND?", "COMMAND NOT SUPPORT"))
            assert huawei.value.final == "COMMAND NOT SUPPORT"
            # the lines before the failure travel with the error; the session keeps working
            with pytest.raises(AtCommandError) as partial:
                await asyncio.gather(session.command("AT+CLAC", 1.0),
                                     answer(modem, "AT+CLAC", "+CGMI", "ERROR"))
            assert partial.value.lines == ["+CGMI"]
            resp, _ = await asyncio.gather(session.command("AT", 1.0), answer(modem, "AT", "OK"))
            assert resp.final == "OK"
    run(scenario)


def test_no_carrier_is_final_for_call_control_and_unsolicited_otherwise():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(AtCommandError) as failed:
                await asyncio.gather(session.command("ATA", 1.0, call_control=True),
                                     answer(modem, "ATA", "NO CARRIER"))
            assert failed.value.final == "NO CARRIER"
            assert urcs == []
            # the far end hangs up while AT+CPCMREG=0 runs: the call ended, the command did not
            resp, _ = await asyncio.gather(
                session.command("AT+CPCMREG=0", 1.0),
                answer(modem, "AT+CPCMREG=0", "VOICE CALL: END: 000008", "NO CARRIER", "OK"))
            assert resp.lines == []
            assert urcs == ["VOICE CALL: END: 000008", "NO CARRIER"]
            modem.say("NO CARRIER")
            await urcs.wait_for(3)
    run(scenario)


def test_call_control_connect_succeeds_and_busy_fails():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            resp, _ = await asyncio.gather(session.command("ATD0802;", 1.0, call_control=True),
                                           answer(modem, "ATD0802;", "CONNECT 9600"))
            assert resp.final == "CONNECT 9600"
            with pytest.raises(AtCommandError) as busy:
                await asyncio.gather(session.command("ATD0802;", 1.0, call_control=True),
                                     answer(modem, "ATD0802;", "BUSY"))
            assert busy.value.final == "BUSY"
    run(scenario)


# -- silence, late answers and vanished ports -----------------------------------------------------

def test_silent_port_times_out_and_late_final_is_discarded():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            loop = asyncio.get_running_loop()
            started = loop.time()
            # T11 c): +CPIN? answered without a final OK
            with pytest.raises(AtTimeout) as timeout:
                await asyncio.gather(session.command("AT+CPIN?", 0.2),
                                     answer(modem, "AT+CPIN?", "+CPIN: READY"))
            elapsed = loop.time() - started
            assert 0.2 <= elapsed < 0.6
            assert isinstance(timeout.value, TimeoutError)
            assert timeout.value.partial == ["+CPIN: READY"]
            assert timeout.value.timeout == 0.2
            assert not timeout.value.resync_failed
            assert not session.in_sync and session.healthy
            assert "AT+CPIN?" in session.last_error
            modem.say("OK")                                   # the late final arrives
            await until(lambda: session.history[-1][2] == "OK", "the late OK to be read")

            async def in_step_modem():
                await answer(modem, "AT", "OK")               # the resync probe
                await answer(modem, "AT+CGMI", "SIMCOM INCORPORATED", "OK")
            resp, _ = await asyncio.gather(session.command("AT+CGMI", 2.0), in_step_modem())
            assert resp.lines == ["SIMCOM INCORPORATED"]
            assert session.in_sync
            assert urcs == []
    run(scenario)


def test_late_final_after_the_probe_is_not_taken_as_the_next_answer():
    # The known bug: the timed-out command's OK comes only once something new has been written.
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(AtTimeout):
                await asyncio.gather(session.command("AT+COPS=?", 0.2),
                                     modem.expect("AT+COPS=?"))

            async def slow_modem():
                await modem.expect("AT")
                # the modem finishes AT+COPS=? first (stale text, a URC, its OK), then the probe
                modem.say('+COPS: (2,"HIL","HIL","00101",7)', "RING", "OK")
                await asyncio.sleep(0.03)
                modem.say("OK")
                await answer(modem, "AT+CSQ", "+CSQ: 20,99", "OK")
            resp, _ = await asyncio.gather(session.command("AT+CSQ", 2.0), slow_modem())
            assert resp.lines == ["+CSQ: 20,99"]
            assert urcs == ["RING"]                     # the URC still went to the listeners
            assert modem.received.count(b"AT+CSQ\r") == 1
    run(scenario)


def test_totally_silent_port_times_out_then_recovers():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(AtTimeout) as timeout:
                await session.command("AT+CGMM", 0.2)
            assert timeout.value.partial == []

            async def recovered_modem():
                await answer(modem, "AT", "OK")
                await answer(modem, "AT+CGMM", "SIMCOM_SIM7600G-H", "OK")
            resp, _ = await asyncio.gather(session.command("AT+CGMM", 2.0), recovered_modem())
            assert resp.lines == ["SIMCOM_SIM7600G-H"]
    run(scenario)


def test_resync_probes_again_when_the_first_probe_is_dropped():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(AtTimeout):
                await session.command("AT+CGMM", 0.2)

            async def busy_modem():
                await modem.expect("AT")                 # dropped: the modem was still busy
                await answer(modem, "AT", "OK")
            ok, _ = await asyncio.gather(session.resync(2.0), busy_modem())
            assert ok and session.in_sync
            assert bytes(modem.received).count(b"AT\r") == 2
    run(scenario)


def test_failed_resyncs_refuse_commands_then_mark_the_session_unhealthy():
    async def scenario():
        async with modem_session(unhealthy_after=2) as (modem, session, urcs):
            reasons = []
            session.add_unhealthy_listener(reasons.append)
            with pytest.raises(AtTimeout):
                await session.command("AT+CSQ", 0.2)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(AtTimeout) as refused:
                await session.command("AT+CREG?", 0.4)
            assert loop.time() - started < 0.4 + 0.2          # never past the command's timeout
            assert refused.value.resync_failed
            assert "not sent" in str(refused.value)
            assert b"AT+CREG?" not in modem.received          # never written
            assert session.healthy and reasons == []          # one failure is not yet "repeatedly"
            assert await session.resync(0.3) is False
            assert not session.healthy
            assert len(reasons) == 1 and "no answer to AT" in reasons[0]
            assert reasons[0] == session.last_error
            assert await session.resync(0.3) is False
            assert len(reasons) == 1                          # told once per turn to unhealthy

            async def revived_modem():
                while True:
                    await answer(modem, "AT", "OK")
            revived = asyncio.ensure_future(revived_modem())
            try:
                assert await session.resync(2.0) is True
            finally:
                revived.cancel()
            assert session.healthy and session.in_sync
    run(scenario)


def test_resync_fails_with_the_link_closed():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            resync = asyncio.ensure_future(session.resync(5.0))
            await modem.expect("AT")
            modem.unplug()
            with pytest.raises(AtLinkClosed):
                await resync
    run(scenario)


class ManualClock:
    """A clock whose sleeps end only when the test says so."""

    def __init__(self):
        self.now = 100.0
        self.sleepers = []

    def monotonic(self):
        return self.now

    def time(self):
        return 1_700_000_000.0 + self.now

    async def sleep(self, seconds):
        woken = asyncio.get_running_loop().create_future()
        self.sleepers.append((seconds, woken))
        await woken

    def fire(self):
        for seconds, woken in self.sleepers:
            self.now += seconds
            woken.set_result(None)
        self.sleepers.clear()


def test_timeout_runs_on_the_injected_clock():
    async def scenario():
        clock = ManualClock()
        async with modem_session(clock=clock) as (modem, session, urcs):
            command = asyncio.ensure_future(session.command("AT+COPS=?", 180.0))
            await modem.expect("AT+COPS=?")
            await until(lambda: clock.sleepers, "the command's timer")
            assert clock.sleepers[0][0] == 180.0 and not command.done()
            clock.fire()
            with pytest.raises(AtTimeout):
                await command
            assert session.history[0] == (100.0, ">", "AT+COPS=?")
    run(scenario)


def test_port_gone_mid_command_fails_it_at_once_and_fires_close_listeners_once():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            closed = []
            session.add_close_listener(lambda: closed.append("a"))
            session.add_close_listener(lambda: 1 / 0)          # a broken one changes nothing
            session.add_close_listener(lambda: closed.append("b"))
            loop = asyncio.get_running_loop()
            started = loop.time()

            async def dying_modem():
                await modem.expect("AT+CLCC")
                modem.say('+CLCC: 1,1,0,0,0,"0802",129')
                await asyncio.sleep(0.02)
                modem.unplug()
            with pytest.raises(AtLinkClosed):
                await asyncio.gather(session.command("AT+CLCC", 5.0), dying_modem())
            assert loop.time() - started < 1.0
            assert session.closed
            assert closed == ["a", "b"]
            with pytest.raises(AtLinkClosed):
                await session.command("AT", 5.0)
            late = []
            session.add_close_listener(lambda: late.append(1))
            assert late == [1]
            await session.close()
            assert closed == ["a", "b"]
    run(scenario)


def test_commands_queued_behind_a_dying_one_fail_too():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            first = asyncio.ensure_future(session.command("AT+CSQ", 5.0))
            second = asyncio.ensure_future(session.command("AT+CREG?", 5.0))
            await modem.expect("AT+CSQ")
            modem.unplug()
            results = await asyncio.gather(first, second, return_exceptions=True)
            assert [type(r) for r in results] == [AtLinkClosed, AtLinkClosed]
            assert all(isinstance(r, AtError) for r in results)
    run(scenario)


def test_close_fails_pending_command_and_later_ones():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            closed = []
            session.add_close_listener(lambda: closed.append(True))
            pending = asyncio.ensure_future(session.command("AT+COPS=?", 5.0))
            await modem.expect("AT+COPS=?")
            await session.close()
            with pytest.raises(AtLinkClosed):
                await pending
            with pytest.raises(AtLinkClosed):
                await session.command("AT", 1.0)
            assert closed == [True]
    run(scenario)


def test_command_text_is_checked():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(ValueError, match="one non-empty line"):
                await session.command("AT\rAT+CFUN=0", 1.0)
            with pytest.raises(ValueError, match="not ASCII"):
                await session.command("ATD+33é;", 1.0)
            assert modem.received == b""
    run(scenario)


def test_history_is_a_bounded_ring():
    async def scenario():
        async with modem_session(history=3) as (modem, session, urcs):
            modem.say("RING", "RING", "+RXDTMF: 1", "+RXDTMF: 2")
            await urcs.wait_for(4)
            assert [line for _, _, line in session.history] == ["RING", "+RXDTMF: 1", "+RXDTMF: 2"]
            assert session.format_history().splitlines()[-1].endswith("< +RXDTMF: 2")
    run(scenario)


# -- the serial link itself -----------------------------------------------------------------------

def test_open_missing_port_names_path_and_reason():
    async def scenario():
        with pytest.raises(SerialOpenError) as err:
            await open_serial("/dev/ttyUSB-callgate-missing")
        assert isinstance(err.value, OSError)
        assert err.value.errno == errno.ENOENT
        assert "/dev/ttyUSB-callgate-missing" in str(err.value)
        assert "No such file or directory" in str(err.value)
    run(scenario)


def test_open_non_tty_and_busy_port_are_refused(tmp_path):
    async def scenario():
        plain = tmp_path / "not-a-tty"
        plain.write_bytes(b"")
        with pytest.raises(SerialOpenError) as not_tty:
            await open_serial(str(plain))
        assert str(plain) in str(not_tty.value)
        modem = PtyModem()
        link = await open_serial(modem.path)
        try:
            with pytest.raises(SerialOpenError, match="in use"):
                await open_serial(modem.path)
        finally:
            link.close()
            modem.close()
    run(scenario)


def test_abandoned_open_releases_the_port():
    async def scenario():
        modem = PtyModem()
        try:
            with pytest.raises(SerialOpenError, match="did not return within 0 s") as err:
                await open_serial(modem.path, open_timeout=0)
            assert err.value.errno == errno.ETIMEDOUT
            # the late-opened port is closed by the opener, so the exclusive lock comes free
            links = []

            async def reopen():
                try:
                    links.append(await open_serial(modem.path))
                except SerialOpenError:
                    pass
                return bool(links)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while not await reopen():
                assert loop.time() < deadline, "port never released"
                await asyncio.sleep(0.01)
            links[0].close()
        finally:
            modem.close()
    run(scenario)


def test_link_read_returns_empty_once_port_is_gone_and_write_stays_quiet():
    async def scenario():
        modem = PtyModem()
        link = await open_serial(modem.path)
        modem.release_slave()
        assert isinstance(link, SerialLink) and link.path == modem.path
        modem.send(b"last words")
        assert await link.read() == b"last words"
        modem.unplug()
        assert await asyncio.wait_for(link.read(), WAIT) == b""
        assert link.closed
        link.write(b"AT\r")                    # no exception
        await link.drain()
        assert await link.read() == b""
        link.close()
    run(scenario)


def test_link_buffers_large_writes_and_drains():
    async def scenario():
        modem = PtyModem()
        link = await open_serial(modem.path, baudrate=9600)
        modem.release_slave()
        asyncio.get_running_loop().remove_reader(modem.master)   # the modem stops reading
        payload = bytes(range(256)) * 1024                        # 256 KiB: > any pty buffer
        link.write(payload)                                       # returns without blocking
        drained = asyncio.ensure_future(link.drain())
        await asyncio.sleep(0.05)
        assert not drained.done()
        got = bytearray()
        while len(got) < len(payload):
            try:
                got += os.read(modem.master, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.001)
        await asyncio.wait_for(drained, WAIT)
        assert bytes(got) == payload
        link.close()
        modem.close()
    run(scenario)


def test_close_wakes_a_waiting_reader():
    async def scenario():
        modem = PtyModem()
        link = await open_serial(modem.path)
        reading = asyncio.ensure_future(link.read())
        await asyncio.sleep(0.01)
        link.close()
        assert await asyncio.wait_for(reading, WAIT) == b""
        modem.close()
    run(scenario)


# -- body after a "> " prompt (SMS) ---------------------------------------------------------------

def test_body_is_written_after_the_prompt_and_ends_with_ctrl_z():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            pdu = b"0011000B915121551532F40000AA0AE8329BFD4697D9EC37"

            async def sms_modem():
                await modem.expect("AT+CMGS=23")
                await asyncio.sleep(0.02)
                assert modem.received == b"AT+CMGS=23\r"     # nothing before the prompt
                modem.send(b"\r\n> ")
                await modem.expect_bytes(pdu + b"\x1a")
                modem.say("RING", "+CMGS: 42", "OK")
            resp, _ = await asyncio.gather(session.command("AT+CMGS=23", 2.0, body=pdu), sms_modem())
            assert resp == AtResponse("AT+CMGS=23", ["+CMGS: 42"], "OK")
            assert urcs == ["RING"]
    run(scenario)


def test_echoed_body_is_dropped_and_a_body_reading_ok_is_not_a_final():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            async def echoing_modem():
                await modem.expect("AT+CMGS=\"+15551230001\"")
                modem.send(b"AT+CMGS=\"+15551230001\"\r\r\n>")    # echo, then the prompt in pieces
                await asyncio.sleep(0.02)
                modem.send(b" ")
                await modem.expect_bytes(b"OK\x1a")
                modem.send(b"OK\x1a")                            # the body echoed back
                await asyncio.sleep(0.02)
                modem.say("+CMGS: 7", "OK")
            resp, _ = await asyncio.gather(
                session.command('AT+CMGS="+15551230001"', 2.0, body=b"OK"), echoing_modem())
            assert resp.lines == ["+CMGS: 7"]
    run(scenario)


def test_refused_sms_fails_without_writing_the_body():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(CmsError) as refused:
                await asyncio.gather(session.command("AT+CMGS=23", 1.0, body=b"00AA"),
                                     answer(modem, "AT+CMGS=23", "+CMS ERROR: 304"))
            assert refused.value.code == 304
            await asyncio.sleep(0.05)
            assert modem.received == b"AT+CMGS=23\r"
    run(scenario)


def test_missing_prompt_times_out_and_cancels_with_esc():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(AtTimeout):
                await session.command("AT+CMGS=23", 0.2, body=b"00AA")
            await until(lambda: modem.received == b"AT+CMGS=23\r\x1b", "ESC after the command")

            async def modem_back():
                await answer(modem, "\x1bAT", "OK")            # the probe leads with ESC too
                await answer(modem, "AT+CMGF?", "+CMGF: 0", "OK")
            resp, _ = await asyncio.gather(session.command("AT+CMGF?", 2.0), modem_back())
            assert resp.lines == ["+CMGF: 0"]
    run(scenario)


def test_body_with_ctrl_z_or_esc_is_refused():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(ValueError, match="byte 3 is Ctrl-Z"):
                await session.command("AT+CMGS=5", 1.0, body=b"abc\x1a")
            with pytest.raises(ValueError, match="byte 0 is ESC"):
                await session.command("AT+CMGS=5", 1.0, body=b"\x1b")
            with pytest.raises(TypeError, match="body must be bytes"):
                await session.command("AT+CMGS=5", 1.0, body="text")
            assert modem.received == b""
    run(scenario)


# -- data mode (V.253 audio in-band) --------------------------------------------------------------

DLE, ETX = 0x10, 0x03


class DleStream:
    """A V.253 receive stream consumer: collects bytes until <DLE><ETX>, returns where it ended."""

    def __init__(self):
        self.raw = bytearray()
        self.chunks = []
        self._dle = False

    def __call__(self, chunk):
        self.chunks.append(bytes(chunk))
        for i, byte in enumerate(chunk):
            if self._dle:
                self._dle = False
                if byte == ETX:
                    return i + 1
            elif byte == DLE:
                self._dle = True
            self.raw.append(byte)
        return None


def test_receive_stream_is_raw_until_dle_etx_then_the_ok_ends_it():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            stream = DleStream()
            audio = bytes(range(0x20, 0x7F)) + b"\r\nOK\r\n\x00\xff\r\nRING\r\n\x10\x10"
            await asyncio.gather(session.start_data("AT+VRX", stream, 1.0),
                                 answer(modem, "AT+VRX", "CONNECT"))
            assert session.in_data_mode
            modem.send(audio)
            await until(lambda: len(stream.raw) >= len(audio), "the audio")
            with pytest.raises(AtDataModeError, match="in data mode for AT[+]VRX"):
                await session.command("AT", 1.0)
            with pytest.raises(AtDataModeError):
                await session.start_data("AT+VTX", stream, 1.0)

            async def stopping_modem():
                await modem.expect_bytes(b"\x10!")
                modem.send(b"\x7f\x80\x10\x03\r\nOK\r\n")         # last audio, end, final
            resp, _ = await asyncio.gather(
                session.end_data(b"\x10!", 1.0, modem_ends_stream=True), stopping_modem())
            assert resp.final == "OK" and resp.command == "AT+VRX"
            assert bytes(stream.raw) == audio + b"\x7f\x80\x10"
            assert not session.in_data_mode
            assert urcs == []                                   # RING inside audio is audio
            resp, _ = await asyncio.gather(session.command("AT", 1.0), answer(modem, "AT", "OK"))
            assert resp.final == "OK"
    run(scenario)


def test_bytes_glued_to_connect_go_raw_and_a_split_crlf_is_not_audio():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            stream = DleStream()

            async def glued_modem():
                await modem.expect("AT+VRX")
                modem.send(b"\r\nCONNECT\r")
                await asyncio.sleep(0.03)
                modem.send(b"\n\x80\x81\r\n")
            await asyncio.gather(session.start_data("AT+VRX", stream, 1.0), glued_modem())
            await until(lambda: len(stream.raw) == 4, "the first audio")
            assert bytes(stream.raw) == b"\x80\x81\r\n"
            modem.send(b"\x10b")                                   # busy tone event
            await until(lambda: len(stream.raw) == 6, "the event")

            async def stopping_modem():
                await modem.expect_bytes(b"\x10!")
                modem.send(b"\x10\x03\r")
                await asyncio.sleep(0.02)
                modem.send(b"\nOK\r\n")
            resp, _ = await asyncio.gather(
                session.end_data(b"\x10!", 1.0, modem_ends_stream=True), stopping_modem())
            assert resp.final == "OK"
            assert bytes(stream.raw) == b"\x80\x81\r\n\x10b\x10"
    run(scenario)


def test_connect_and_stream_end_in_the_same_chunk():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            stream = DleStream()
            ended = asyncio.get_running_loop().create_future()

            async def quick_modem():
                await modem.expect("AT+VRX")
                modem.send(b"\r\nCONNECT\r\n\x80\x10s\x10\x03\r\nOK\r\n")
            await asyncio.gather(session.start_data("AT+VRX", stream, 1.0), quick_modem())
            await until(lambda: stream.raw == b"\x80\x10s\x10", "the stream")
            assert session.in_data_mode                 # until end_data() collects the final
            with pytest.raises(AtDataModeError, match="has ended"):
                session.write_data(b"\x80")
            resp = await session.end_data(b"\x10!", 1.0, modem_ends_stream=True)
            assert resp.final == "OK"
            await asyncio.sleep(0.02)
            assert b"\x10!" not in modem.received       # the stream had ended: no terminator
            ended.set_result(None)
    run(scenario)


def test_transmit_stream_writes_raw_and_ends_in_line_mode_at_once():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            events = []
            await asyncio.gather(
                session.start_data("AT+VTX", lambda chunk: events.append(chunk), 1.0,
                                   connect=("VCON", "CONNECT")),
                answer(modem, "AT+VTX", "VCON"))
            audio = bytes([0x80, 0x10, 0x10, 0x7F]) * 100
            session.write_data(audio)
            await session.drain()
            await modem.expect_bytes(audio)
            modem.send(b"\x101")                                   # DTMF 1 while playing
            await until(lambda: events, "the DTMF event")
            assert b"".join(events) == b"\x101"

            async def playing_modem():
                await modem.expect_bytes(b"\x10\x03")
                modem.say("OK")
            resp, _ = await asyncio.gather(
                session.end_data(b"\x10\x03", 1.0, modem_ends_stream=False), playing_modem())
            assert resp.final == "OK"
            with pytest.raises(AtDataModeError, match="not in data mode"):
                session.write_data(b"\x80")
            with pytest.raises(AtDataModeError, match="not in data mode"):
                await session.end_data(b"\x10\x03", 1.0, modem_ends_stream=False)
    run(scenario)


def test_refused_data_command_raises_like_command():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            with pytest.raises(AtCommandError) as refused:
                await asyncio.gather(session.start_data("AT+VTX", lambda c: None, 1.0),
                                     answer(modem, "AT+VTX", "ERROR"))
            assert refused.value.final == "ERROR"
            with pytest.raises(AtCommandError) as wrong:
                await asyncio.gather(session.start_data("AT+VTX", lambda c: None, 1.0),
                                     answer(modem, "AT+VTX", "OK"))
            assert wrong.value.final == "OK"                # OK is not CONNECT: no data mode
            with pytest.raises(AtCommandError) as no_carrier:
                await asyncio.gather(session.start_data("ATD555;", lambda c: None, 1.0),
                                     answer(modem, "ATD555;", "NO CARRIER"))
            assert no_carrier.value.final == "NO CARRIER"
            assert not session.in_data_mode
            with pytest.raises(ValueError, match="connect must name"):
                await session.start_data("AT+VTX", lambda c: None, 1.0, connect=())
            resp, _ = await asyncio.gather(session.command("AT", 1.0), answer(modem, "AT", "OK"))
            assert resp.final == "OK"
    run(scenario)


def test_silent_end_of_stream_times_out_and_the_session_resyncs():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            stream = DleStream()
            await asyncio.gather(session.start_data("AT+VRX", stream, 1.0),
                                 answer(modem, "AT+VRX", "CONNECT"))
            with pytest.raises(AtTimeout):
                await session.end_data(b"\x10!", 0.2, modem_ends_stream=True)
            assert not session.in_data_mode and not session.in_sync

            async def modem_back():
                await answer(modem, "AT", "OK")
                await answer(modem, "ATH", "OK")
            resp, _ = await asyncio.gather(session.command("ATH", 2.0), modem_back())
            assert resp.final == "OK"
    run(scenario)


def test_link_lost_in_data_mode_fires_close_listeners():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            closed = []
            session.add_close_listener(lambda: closed.append(True))
            stream = DleStream()
            await asyncio.gather(session.start_data("AT+VRX", stream, 1.0),
                                 answer(modem, "AT+VRX", "CONNECT"))
            modem.send(b"\x80" * 10)
            await until(lambda: len(stream.raw) == 10, "audio")
            modem.unplug()
            await until(lambda: closed, "the close listener")
            assert not session.in_data_mode
            with pytest.raises(AtLinkClosed):
                session.write_data(b"\x80")
            with pytest.raises(AtLinkClosed):
                await session.end_data(b"\x10!", 1.0, modem_ends_stream=True)
    run(scenario)


def test_cancelled_command_leaves_the_session_to_resync_first():
    async def scenario():
        async with modem_session() as (modem, session, urcs):
            waiting = asyncio.ensure_future(session.command("AT+COPS=?", 5.0))
            await modem.expect("AT+COPS=?")
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert not session.in_sync                       # its OK may still come

            async def modem_in_step():
                await modem.expect("AT")
                modem.say('+COPS: (2,"HIL","HIL","00101",7)', "OK")   # the cancelled one's answer
                await asyncio.sleep(0.02)
                modem.say("OK")
                await answer(modem, "AT+CSQ", "+CSQ: 9,99", "OK")
            resp, _ = await asyncio.gather(session.command("AT+CSQ", 2.0), modem_in_step())
            assert resp.lines == ["+CSQ: 9,99"]
    run(scenario)
