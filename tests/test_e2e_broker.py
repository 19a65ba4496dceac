"""The broker side of resilience: the last will says offline, and a broker restart is survived."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import _stack
from tests.stack import AgentClient, Mosquitto, stop_daemon


@pytest.fixture
def own_mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


def test_last_will_marks_the_gateway_offline_after_kill_9(tmp_path, own_mosquitto):
    stack = _stack(tmp_path, own_mosquitto)
    watcher = AgentClient(stack, "alice")
    try:
        watcher.wait_for(lambda t, o: t.endswith("/status") and o.get("online") is True, 10, "online")
        stack.proc.send_signal(signal.SIGKILL)
        stack.proc.wait(5)
        offline = watcher.wait_for(lambda t, o: t.endswith("/status") and o.get("online") is False, 60,
                                   "last will (offline)")
        assert offline == {"online": False}
    finally:
        watcher.close()
        stack.emulator.stop()


def test_daemon_reconnects_and_republishes_after_a_broker_restart(tmp_path, own_mosquitto):
    stack = _stack(tmp_path, own_mosquitto)
    try:
        own_mosquitto.stop()                     # persistence is off: every retained message is gone
        own_mosquitto.start()
        agent = AgentClient(stack, "alice")
        try:
            agent.wait_for(lambda t, o: t.endswith("/status") and o.get("online") is True, 20, "online again")
            agent.wait_for(lambda t, o: t.endswith("/line/gsm1") and o.get("state") == "idle", 10, "line state")
            assert agent.command("login", password="alice-pass")["ok"]   # commands are served again
            assert agent.command("available")["ok"]
            stack.emulator.ring("+15551230006")
            assert stack.emulator.wait_for_state("active", 10)
            stack.emulator.send_dtmf("1")
            offer = agent.wait_for(lambda t, o: t.endswith("/agent/alice/offer"), 20, "offer after restart")
            assert offer["caller"] == "+15551230006"
            stack.emulator.hangup()
        finally:
            agent.close()
        assert stop_daemon(stack.proc) == 0
    finally:
        stack.emulator.stop()
