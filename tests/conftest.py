"""Shared fixtures: mosquitto, and the whole stack (emulated modem + daemon + broker + dashboard)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.stack import DEMO_FLOW, Mosquitto, Stack, free_port, start_daemon, stop_daemon, wait_ready, write_config
from hil.sim7600 import Sim7600Emulator

# On a clean clone (CI) the property tests draw the same examples every run, so a landing never depends
# on luck; on a workstation they explore new ones each run (HYPOTHESIS_PROFILE=explore forces that).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "explore"))


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


def _stack(tmp_path, broker: Mosquitto | None):
    emulator = Sim7600Emulator(ring_interval=2.0)
    emulator.start()
    data_dir = tmp_path / "data"
    config = tmp_path / "callgate.toml"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=broker, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emulator.at_port,
                         "audio_port": emulator.audio_port, "flow": str(DEMO_FLOW), "number": "+15550000000"}])
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, data_dir, log_path)
    try:
        state = wait_ready(data_dir, proc, log_path)
    except Exception:
        emulator.stop()
        stop_daemon(proc)
        raise
    stack = Stack(emulator=emulator, gateway_id=state["gateway_id"], data_dir=data_dir, config=config, proc=proc,
                  mqtt_host=state["mqtt_host"], mqtt_port=state["mqtt_port"], ws_url=state["ws_url"],
                  dashboard_url=state["dashboard"], log_path=log_path)
    return stack


@pytest.fixture(params=["embedded", "mosquitto"])
def stack(request, tmp_path):
    broker = request.getfixturevalue("mosquitto") if request.param == "mosquitto" else None
    s = _stack(tmp_path, broker)
    yield s
    code = stop_daemon(s.proc)
    s.emulator.stop()
    assert code == 0, f"daemon exited with {code}:\n{s.log()[-3000:]}"


@pytest.fixture
def embedded_stack(tmp_path):
    s = _stack(tmp_path, None)
    yield s
    stop_daemon(s.proc)
    s.emulator.stop()
