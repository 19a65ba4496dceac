"""The agent dashboard's outbound calls, transfers, real-time metrics and callbacks, in headless Chromium.

Against the real daemon (embedded broker, one emulated SIM7600): an agent dials from the page and the
modem sees the ATD, rings, is answered, audio runs both ways, the agent hangs up; a busy number and a
refused number read in words; a waiting caller shows in the metrics panel, the agent takes the call and
transfers it to another queue from the page, where a second agent (MQTT) takes it; an agent whose
security profile lacks make_outbound_calls and view_realtime_metrics sees neither. Against a stand-in
gateway on mosquitto: a callback offer and its progress, refusals in words, the Missed hint.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from gateway.center.passwords import hash_password
from gateway.web.server import DashboardServer
from tests.stack import AgentClient, launch, stop_daemon, wait_until
from tests.web_helpers import MqttProbe, chromium_page, dominant_frequency, make_tone_wav, run_mosquitto

MIC_HZ, FAR_END_HZ = 600.0, 1000.0
FLOW = {"Version": "2019-10-30", "StartAction": "queue-set", "Actions": [
    {"Identifier": "queue-set", "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "support"},
     "Transitions": {"NextAction": "queue", "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
    {"Identifier": "queue", "Type": "TransferContactToQueue", "Parameters": {},
     "Transitions": {"Errors": [{"ErrorType": "QueueAtCapacity", "NextAction": "bye"},
                                {"ErrorType": "NoMatchingError", "NextAction": "bye"}]}},
    {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}}]}
EXTRA = f"""
[[queues]]
id = "sales"
name = "Sales"
acw_timeout = 30

[[security_profiles]]
id = "agent"
permissions = ["take_calls", "make_outbound_calls", "transfer", "control_recording", "view_realtime_metrics"]

[[security_profiles]]
id = "trainee"
permissions = ["take_calls"]

[[agents]]
id = "tina"
name = "Tina"
password_hash = "{hash_password("tina-pass", iterations=2000)}"
security_profile = "trainee"
"""


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web-agent-calls")
    (tmp / "main.json").write_text(json.dumps(FLOW))
    stack = launch(tmp, tmp / "main.json", extra=EXTRA)
    stack.agents["tina"] = "tina-pass"
    bob = None
    try:
        bob = AgentClient(stack, "bob")
        bob.wait_for(lambda t, o: t.endswith("/line/gsm1") and o.get("state") == "idle", 20, "line gsm1 idle")
        assert bob.command("login", password=stack.agents["bob"])["ok"]
        yield {"stack": stack, "emu": stack.emulator, "bob": bob,
               "mic": make_tone_wav(tmp / "mic600.wav", freq=MIC_HZ, seconds=60)}
    finally:
        if bob is not None:
            bob.close()
        stop_daemon(stack.proc)
        stack.emulator.stop()


def sign_in(page, stack, agent: str) -> None:
    page.goto(stack.dashboard_url)
    page.wait_for_function(f"document.querySelector('#gateway-id').value === '{stack.gateway_id}'", timeout=5000)
    page.fill("#agent-id", agent)
    page.fill("#password", stack.agents[agent])
    page.click("#login")
    page.wait_for_selector("#agent-panel:not([hidden])", timeout=10000)
    page.wait_for_function("window.__cg.state !== null && window.__cg.permissions() !== null", timeout=5000)


def set_state(page, button: str, state: str) -> None:
    if page.evaluate("window.__cg.state") != state:
        page.click(button)
    page.wait_for_function(f"window.__cg.state === '{state}'", timeout=5000)


def text_is(page, selector: str, text: str, timeout: float = 10000) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s).textContent === t", arg=[selector, text],
                           timeout=timeout)


def dials(emu, since: int) -> list[str]:
    return [text for _, direction, text in emu.transcript[since:] if direction == ">" and text.startswith("ATD")]


def metric(page, queue: str, key: str) -> str:
    return page.text_content(f'#metrics td[data-queue="{queue}"][data-metric="{key}"]')


def test_an_agent_dials_out_from_the_dashboard(rig):
    stack, emu = rig["stack"], rig["emu"]
    with chromium_page(rig["mic"]) as page:
        sign_in(page, stack, "alice")
        assert page.is_visible("#dial-panel") and page.is_visible("#dial")
        assert page.inner_text("#dial") == "Call"
        page.wait_for_function("document.querySelectorAll('#dial-queue option').length === 3", timeout=5000)
        assert page.eval_on_selector_all("#dial-queue option", "os => os.map(o => [o.value, o.textContent])") == \
            [["", "Default queue"], ["sales", "Sales"], ["support", "Support"]]

        page.fill("#dial-number", "12")                            # refused by the gateway, in words
        page.click("#dial")
        page.wait_for_selector("#error:not([hidden])", timeout=5000)
        assert page.inner_text("#error-text").startswith("Call to 12 not placed: that is not a phone number.")
        assert page.is_hidden("#call") and page.evaluate("window.__cg.micActive()") is False

        emu.set_outbound_outcome(None, alert_after=0.3)            # rings until the test answers
        mark = len(emu.transcript)
        page.fill("#dial-number", "+49 30 1234-5678")
        page.select_option("#dial-queue", "support")
        page.click("#dial")
        page.wait_for_selector("#call:not([hidden])", timeout=5000)
        assert page.is_hidden("#error")
        assert wait_until(lambda: dials(emu, mark), 5, "the ATD", stack) == ["ATD+493012345678;"]
        text_is(page, "#call-progress", "Ringing…")
        assert page.text_content("#call-label") == "Calling"
        assert page.inner_text("#call-caller") == "+493012345678"
        assert page.inner_text("#call-queue").startswith("queue support · line gsm1")
        assert page.is_disabled("#transfer") and page.is_disabled("#dial")
        emu.remote_answer()
        text_is(page, "#call-progress", "Answered")
        assert page.text_content("#call-label") == "On call with"
        assert page.is_enabled("#transfer")
        cid = page.evaluate("window.__cg.callId")

        # audio both ways, as for a call the agent accepted
        rx_before = page.evaluate("window.__cg.rxFrames")
        emu.play_tone(FAR_END_HZ, 2.0, amplitude=0.4)
        page.wait_for_function(f"window.__cg.rxFrames >= {rx_before + 60}", timeout=5000)
        assert abs(dominant_frequency(page.evaluate("window.__cg.rxSamples()"), 8000) - FAR_END_HZ) < 10
        emu.clear_capture()
        page.wait_for_timeout(1000)
        said = emu.capture()
        assert len(said) > 4000 and np.sqrt(np.mean(np.square(said / 32768.0))) > 0.03
        assert abs(dominant_frequency(said, 8000) - MIC_HZ) < 10

        page.click("#hangup")
        page.wait_for_selector("#acw:not([hidden])", timeout=5000)
        assert emu.wait_for_state("idle", 5)
        text_is(page, "#last-call", "Call to +493012345678 ended: you hung up.")
        assert page.evaluate("window.__cg.callStages") == [f"{cid}:{s}" for s in ("dialing", "ringing", "answered",
                                                                                   "ended")]
        page.wait_for_function("window.__cg.micActive() === false", timeout=5000)

        # a busy number: the outcome in words, then after-call work
        page.click("#ready")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
        emu.set_outbound_outcome("busy", alert_after=0.2, after=0.5)
        page.fill("#dial-number", "+15557770003")
        page.click("#dial")
        text_is(page, "#last-call", "Call to +15557770003 not answered: busy.")
        page.wait_for_selector("#acw:not([hidden])", timeout=5000)
        assert page.is_hidden("#call")
        page.click("#ready")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
        set_state(page, "#btn-offline", "Offline")
        assert page.cg_errors == []


def test_metrics_show_a_waiting_caller_and_a_transfer_lands_with_another_agent(rig):
    stack, emu, bob = rig["stack"], rig["emu"], rig["bob"]
    caller = "+15551230077"
    assert bob.command("offline")["ok"]
    with chromium_page(rig["mic"]) as page:
        sign_in(page, stack, "alice")
        set_state(page, "#btn-offline", "Offline")
        page.wait_for_selector("#metrics-panel:not([hidden]) table.metrics", timeout=5000)
        assert metric(page, "support", "contacts_in_queue") == "0"
        assert page.text_content('#metrics li[data-agent="bob"]') == "Bob (bob) · Offline"

        emu.ring(caller)
        page.wait_for_function("document.querySelector('#metrics td[data-queue=\"support\"]"
                               "[data-metric=\"contacts_in_queue\"]').textContent === '1'", timeout=15000)
        assert metric(page, "total", "contacts_in_queue") == "1" and metric(page, "sales", "contacts_in_queue") == "0"
        assert metric(page, "support", "oldest_wait").startswith("0:0")
        assert metric(page, "total", "agents_online") == "0"           # alice and bob are both Offline

        page.click("#btn-available")
        page.wait_for_selector("#offer:not([hidden])", timeout=10000)
        assert page.inner_text("#offer-caller") == caller and page.text_content("#offer-label") == "Incoming call"
        page.click("#accept")
        page.wait_for_selector("#call:not([hidden])", timeout=5000)
        page.wait_for_function("window.__cg.state === 'OnCall'", timeout=5000)
        first = page.evaluate("window.__cg.callId")
        assert page.is_visible("#transfer-row") and page.is_hidden("#call-progress")
        text_is(page, "#metrics td[data-queue='support'][data-metric='contacts_in_queue']", "0")

        # the page knows the queues and the other agents, with their state
        assert bob.command("available")["ok"]
        text_is(page, "#transfer-target option[value='agent:bob']", "Bob (bob) · Available")
        assert page.eval_on_selector_all("#transfer-target optgroup[label='Queues'] option",
                                         "os => os.map(o => o.value)") == ["queue:sales", "queue:support"]
        page.select_option("#transfer-target", "queue:sales")
        page.click("#transfer")
        page.wait_for_selector("#acw:not([hidden])", timeout=5000)
        assert page.is_hidden("#call") and page.is_hidden("#error")
        text_is(page, "#last-call", f"Transferred {caller} to queue Sales.")

        offer = bob.wait_for(lambda t, o: t.endswith("/agent/bob/offer") and o.get("previous_contact_id") == first,
                             10, "the transferred call's offer to bob")
        assert (offer["queue"], offer["initiation_method"], offer["caller"]) == ("sales", "TRANSFER", caller)
        assert bob.command("accept", contact_id=offer["contact_id"])["ok"]
        bob.agent_state("OnCall")
        text_is(page, "#metrics td[data-queue='total'][data-metric='agents_on_contact']", "1")
        assert metric(page, "total", "agents_acw") == "1"
        text_is(page, '#metrics li[data-agent="bob"]', "Bob (bob) · On call")

        emu.hangup()
        bob.agent_state("AfterCallWork")
        assert bob.command("offline")["ok"]
        page.click("#ready")
        page.wait_for_function("window.__cg.state === 'Available'", timeout=5000)
        set_state(page, "#btn-offline", "Offline")
        assert page.cg_errors == []


def test_an_agent_without_the_permissions_sees_no_call_button_and_no_metrics(rig):
    with chromium_page(rig["mic"]) as page:
        sign_in(page, rig["stack"], "tina")
        assert page.evaluate("window.__cg.permissions()") == ["take_calls"]
        assert page.is_visible("#btn-available")
        assert page.is_hidden("#dial-panel") and page.is_hidden("#dial")
        assert page.is_hidden("#metrics-panel")
        assert page.evaluate("window.__cg.subscribed()") == [
            "agent/tina/call", "agent/tina/offer", "agent/tina/state", "queue/+", "status"]
        page.wait_for_timeout(300)
        assert page.is_hidden("#metrics-panel")
        assert page.cg_errors == []


# ----------------------------------------------------------------------------- a stand-in gateway

def test_callback_offer_progress_and_refusals_in_words(tmp_path):
    prefix = "callgate/gwcb/"
    with run_mosquitto(tmp_path) as broker:
        gw = MqttProbe(broker.tcp_port, client_id="fake-gateway")
        gw.subscribe(prefix + "agent/+/cmd")

        def state(**fields) -> None:
            gw.publish(prefix + "agent/ann/state", {"agent": "ann", "name": "Ann", "since": time.time(), "offer": None,
                                                    "contact_id": None, **fields}, retain=True)

        def answer(action: str, **fields) -> dict:
            cmd = gw.expect_json(prefix + "agent/ann/cmd")
            assert cmd["action"] == action, cmd
            gw.publish(prefix + "agent/ann/reply", {"id": cmd["id"], "action": action, **fields})
            return cmd

        def progress(stage: str, **fields) -> None:
            gw.publish(prefix + "agent/ann/call", {"contact_id": "cb-1", "kind": "CALLBACK", "number": "+4930555",
                                                   "line": "gsm2", "stage": stage, "at": time.time(),
                                                   "attempt": 1, "attempts": 2, **fields})
        try:
            with DashboardServer("127.0.0.1", 0, ws_url=broker.ws_url, gateway_id="gwcb") as srv, \
                    chromium_page(make_tone_wav(tmp_path / "mic.wav", seconds=10)) as page:
                page.goto(srv.url)
                page.wait_for_function("document.querySelector('#gateway-id').value === 'gwcb'", timeout=5000)
                page.fill("#agent-id", "ann")
                page.fill("#password", "pw")
                page.click("#login")
                answer("login", ok=True, state="Missed")            # a gateway that does not say the permissions
                state(state="Missed", missed=True)
                page.wait_for_function("window.__cg.state === 'Missed'", timeout=5000)
                assert page.inner_text("#state") == "Missed a call"
                assert "Press Available to take calls again." in page.inner_text("#state-hint")

                page.fill("#dial-number", "+15550001")
                page.click("#dial")
                answer("dial", ok=False, code="forbidden", missing_permission="make_outbound_calls",
                       error="agent ann's security profile 'trainee' lacks the make_outbound_calls permission")
                text_is(page, "#error-text", "Call to +15550001 not placed: not allowed: missing permission "
                        "make_outbound_calls. agent ann's security profile 'trainee' lacks the make_outbound_calls "
                        "permission")
                page.click("#dial")
                answer("dial", ok=False, code="line_busy", error="line gsm2 is in_call")
                text_is(page, "#error-text", "Call to +15550001 not placed: the line is busy. line gsm2 is in_call")
                assert page.is_hidden("#call") and page.is_enabled("#dial")

                page.click("#btn-available")
                answer("available", ok=True, state="Available")
                offer = {"contact_id": "cb-1", "call_id": "cb-1", "caller": "+4930555", "queue": "sales",
                         "line": "", "expires_in": 20.0, "initiation_method": "CALLBACK",
                         "callback_number": "+4930555", "previous_contact_id": "c-9"}
                state(state="Available", offer=offer)
                page.wait_for_selector("#offer:not([hidden])", timeout=5000)
                assert page.text_content("#offer-label") == "Callback request"
                assert page.inner_text("#offer-caller") == "Callback to +4930555"
                assert "the gateway calls the customer" in page.inner_text("#offer-note")
                page.click("#accept")
                answer("accept", ok=True, state="OnCall", contact_id="cb-1")
                state(state="OnCall", contact_id="cb-1")
                page.wait_for_selector("#call:not([hidden])", timeout=5000)
                assert page.text_content("#call-label") == "Callback to"
                assert page.inner_text("#call-caller") == "+4930555"
                progress("dialing")
                text_is(page, "#call-progress", "Dialing… (attempt 1 of 2)")
                progress("ringing")
                text_is(page, "#call-progress", "Ringing… (attempt 1 of 2)")
                assert page.is_disabled("#transfer")
                retry = time.time() + 120
                progress("ended", outcome="no_answer", reason="no_answer", retry_at=retry)
                state(state="AfterCallWork", contact_id="cb-1")
                page.wait_for_selector("#acw:not([hidden])", timeout=5000)
                last = page.inner_text("#last-call")
                assert last.startswith("Callback to +4930555 not answered: no answer (attempt 1 of 2); "
                                       "the gateway tries again at "), last
                assert page.cg_errors == []
        finally:
            gw.close()
