"""Emulator fidelity: python-gsmmodem-new, a third-party AT library written against real modems,
works against every GSM emulator family unchanged: connect and init, identity, signal, SMS out and in,
and an incoming call with caller ID that it answers."""

from __future__ import annotations

import threading
import time

import pytest
from gsmmodem.modem import GsmModem

from hil.gsm import create


# The SIM7600 frames +CRING with <CR><CR><LF> (modems.md §1.1); python-gsmmodem then cannot pair the
# ring with the +CLIP after it and reports the call without a number, as it does on the real module.
@pytest.mark.parametrize("family, model, caller", [
    ("simcom_sim7600", "SIMCOM_SIM7600G-H", None), ("quectel_ec25", "EC25", "+15551230001"),
    ("huawei_e1752", "E1752", "+15551230001"), ("simcom_sim800", "SIMCOM_SIM800L", "+15551230001")])
def test_python_gsmmodem_drives_the_emulator_unchanged(family, model, caller):
    emu = create(family)
    emu.start()
    calls, texts = [], []
    rang, got_sms = threading.Event(), threading.Event()

    def on_call(call):
        calls.append(call)
        rang.set()

    def on_sms(sms):
        texts.append((sms.number, sms.text))
        got_sms.set()
    modem = GsmModem(emu.at_port, 115200, incomingCallCallbackFunc=on_call, smsReceivedCallbackFunc=on_sms)
    try:
        modem.connect()
        assert modem.model == model and len(modem.imei) == 15
        assert 0 <= modem.signalStrength <= 31
        sms = modem.sendSms("+15551230009", "hello from a third-party library")
        assert sms.status == 0 and emu.sent_sms()[-1]["text"] == "hello from a third-party library"

        emu.receive_sms("+15557654321", "Привет, мир")
        assert got_sms.wait(10), emu.transcript[-20:]
        assert texts == [("+15557654321", "Привет, мир")]

        emu.ring("+15551230001")
        assert rang.wait(10), emu.transcript[-20:]
        # the library announces the call on RING and fills in the number when +CLIP follows
        deadline = time.monotonic() + 3
        while caller is not None and calls[0].number is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert calls[0].number == caller
        calls[0].answer()
        assert emu.wait_for_state("active", 10)
        calls[0].hangup()
        assert emu.wait_for_state("idle", 10)
    finally:
        modem.close()
        emu.stop()
