"""The daemon under test as the end-to-end benches set it up: emulated SIM7600 lines, mosquitto or the
embedded broker, a config with bench agents, the finished contact records, and the teardown."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Collection

from bench.agent_client import AgentClient
from bench.common import REPO, BenchError
from gateway.center.passwords import hash_password
from hil.sim7600 import Sim7600Emulator
from tests.stack import Mosquitto, free_port, stop_daemon, write_config

RING_INTERVAL = 2.0         # emulator RING repeat
RECORDS_TIMEOUT = 15.0      # last call ended -> every record written and finished
RECORDS_POLL = 0.3
CONTACTS_CLI_TIMEOUT = 60.0
PASSWORD_ITERATIONS = 2000  # cheap hashes: the bench measures calls, not logins
LOG_TAIL_CHARS = 3000       # of the daemon log, shown when a run fails


def bench_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """An end-to-end bench's command line: the first paragraph of its docstring, the rest kept as written."""
    return argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


class DaemonRun:
    """Emulators, (mosquitto,) daemon process and agents of one bench run; close() tears down what exists."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.abort = threading.Event()
        self.emulators: list[Sim7600Emulator] = []
        self.broker: Mosquitto | None = None
        self.proc: subprocess.Popen | None = None
        self.agents: list[AgentClient] = []
        self.agent_passwords: dict[str, str] = {}
        self.config = workdir / "callgate.toml"
        self.data_dir = workdir / "data"
        self.log_path = workdir / "daemon.log"

    def prepare(self, lines: int, agents: int, broker: str, flow: Path,
                emulator: Callable[[int], Sim7600Emulator] = lambda i: Sim7600Emulator(ring_interval=RING_INTERVAL)
                ) -> None:
        """Starts one emulator per line (gsm1..) and mosquitto when broker == "mosquitto", and writes the
        daemon's config: every line runs `flow`, agents agent1.. have the password "<id>-pass"."""
        for i in range(lines):
            emu = emulator(i)
            emu.start()
            self.emulators.append(emu)
        if broker == "mosquitto":
            self.broker = Mosquitto(self.workdir).start()
        self.agent_passwords = {f"agent{i + 1}": f"agent{i + 1}-pass" for i in range(agents)}
        extra = "".join(f'\n[[agents]]\nid = "{aid}"\nname = "Bench {aid}"\n'
                        f'password_hash = "{hash_password(pw, iterations=PASSWORD_ITERATIONS)}"\n'
                        for aid, pw in self.agent_passwords.items())
        write_config(self.config, gateway_id="bench", data_dir=self.data_dir, broker=self.broker,
                     web_port=free_port(), extra=extra,
                     lines=[{"id": f"gsm{i + 1}", "profile": "simcom_sim7600", "at_port": emu.at_port,
                             "audio_port": emu.audio_port, "flow": str(flow), "number": f"+1555000{i:04d}"}
                            for i, emu in enumerate(self.emulators)])

    def records(self, callers: Collection[str], finished: Callable[[dict], bool]) -> dict[str, dict]:
        """The contact records of these callers (by caller number), once `finished` holds for every one."""
        deadline = time.monotonic() + RECORDS_TIMEOUT
        env = dict(os.environ, CALLGATE_CONFIG=str(self.config))
        while True:
            res = subprocess.run([sys.executable, "-m", "gateway", "contacts", "-c", str(self.config), "--json",
                                  "--limit", str(len(callers) + 50)], capture_output=True, text=True,
                                 timeout=CONTACTS_CLI_TIMEOUT, env=env, cwd=REPO)
            rows = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else []
            found = {r["caller"]: r for r in rows if r.get("caller") in callers and finished(r)}
            if len(found) == len(callers):
                return found
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(found)} of {len(callers)} contact records finished after "
                                 f"{RECORDS_TIMEOUT:g} s: {res.stderr.strip()[-500:]}")
            time.sleep(RECORDS_POLL)

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the daemon's log ("" before it exists)."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def closing(self) -> None:
        """The bench's own teardown, after the agents and before the daemon stops."""

    def close(self) -> None:
        self.abort.set()
        for agent in self.agents:
            try:
                agent.close()
            except Exception:
                pass
        self.closing()
        if self.proc is not None:
            stop_daemon(self.proc)
        for emu in self.emulators:
            emu.stop()
        if self.broker is not None:
            self.broker.stop()

    def dispose(self, keep: bool) -> bool:
        """close(), then remove the work folder unless `keep`; True when it was kept."""
        self.close()
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return keep
