"""The recovery ladder's last rung: a modem unplugged and plugged back under new /dev names is found
again by its IMEI (through the port inventory, as udev would list it) and the line serves again; a port
another line holds is never opened while searching."""

from __future__ import annotations

import asyncio
import os

from gateway.modem.line import Line, LineState
from gateway.modem.profile import load_profile
from gateway.modem.relocate import relocate
from hil.gsm import create
from tests.test_modem_line import Recorder, until

PROFILE = load_profile("simcom_sim7600")


def test_line_finds_its_modem_again_under_a_new_name(tmp_path, monkeypatch):
    inventory = tmp_path / "inventory.json"
    emu = create("simcom_sim7600", by_id_dir=str(tmp_path / "by-id"), ring_interval=0.5)
    other = create("simcom_sim7600", imei="867584030009999", by_id_dir=str(tmp_path / "by-id"))
    emu.start()
    other.start()
    emu.on_replug(lambda: emu.write_inventory(str(inventory)))
    emu.write_inventory(str(inventory))
    other_inventory = tmp_path / "other.json"
    other.write_inventory(str(other_inventory))
    # the busy modem is listed first, so a search that ignored `busy` would probe it before ours
    monkeypatch.setenv("CALLGATE_PORT_INVENTORY", os.pathsep.join((str(other_inventory), str(inventory))))

    async def scenario():
        rec = Recorder()
        busy = {other.at_port, other.audio_port}

        async def locate(identity):
            return await relocate(identity, PROFILE, busy=busy)
        line = Line("gsm1", PROFILE, emu.at_port, emu.audio_port, rec, locate=locate)
        task = asyncio.create_task(line.run())
        try:
            await until(lambda: line.state == LineState.IDLE, 10, lambda: line.error)
            old = line.at_port
            emu.unplug()
            await until(lambda: line.state in (LineState.RECOVERING, LineState.FAILED), 5)
            emu.replug()
            await until(lambda: line.state == LineState.IDLE and line.at_port != old, 20,
                        lambda: (line.state, line.error, line.at_port))
            assert (line.at_port, line.audio_port) == (emu.at_port, emu.audio_port)
            assert line.health.recoveries == 1 and "found again" in line.health.last_recovery
            emu.ring("+15551230077")
            await until(lambda: ("incoming", "+15551230077") in rec.events, 10, lambda: rec.events)
            # the other modem, in use by another line, was never probed
            assert not any(d == ">" for _, d, _ in other.transcript)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            emu.stop()
            other.stop()
    asyncio.run(scenario())
