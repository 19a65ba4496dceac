"""Shared fixtures: mosquitto, and the whole stack (emulated modem + daemon + broker + dashboard)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.stack import DEMO_FLOW, Mosquitto, launch, stop_daemon

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
    return launch(tmp_path, DEMO_FLOW, broker=broker)


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
