"""Faults a scenario can inject into a running emulator: silence, garbage, slow replies, a URC inside a
response, unplug and replug under new tty names, reset, registration loss, a missing or locked SIM,
and a wedged command interpreter that only a replug clears. Every method is thread-safe."""

from __future__ import annotations


class FaultsMixin:
    """Scripting methods for faults; the state they switch lives in EmulatorBase / GsmEmulator."""

    # ---------------------------------------------------------------- command channel

    def no_answer(self, on: bool = True) -> None:
        """Commands are taken but get no reply (and no echo); URCs keep coming."""
        self._call_in_loop(setattr, self, "_no_answer", bool(on))

    def freeze(self, frozen: bool = True) -> None:
        self.no_answer(frozen)

    def garbage(self, data: bytes) -> None:
        """Raw bytes on the AT tty, as line noise or a confused firmware would send them."""
        self._call_in_loop(self._inject, bytes(data))

    def inject(self, data: bytes) -> None:
        self._call_in_loop(self._inject, bytes(data))

    def slow(self, seconds: float) -> None:
        """Each reply comes this many seconds late (0: back to normal); commands queue meanwhile."""
        if seconds < 0:
            raise ValueError("slow wants seconds >= 0")
        self._call_in_loop(setattr, self, "_slow", float(seconds))

    def urc_inside_response(self, line: str) -> None:
        """The next response on the AT tty carries this URC between its lines."""
        self._call_in_loop(self._urc_inside.append, str(line))

    def wedge(self) -> None:
        """The command interpreter stops (no echo, no reply, not even to AT+CFUN=1,1) while URCs
        keep coming, like a wedged Huawei; only unplug/replug clears it."""
        self._call_in_loop(setattr, self, "_wedged", True)

    @property
    def wedged(self) -> bool:
        return self._wedged

    # ---------------------------------------------------------------- USB

    def unplug(self) -> None:
        """Every tty of the device disappears; the host reads EOF/EIO."""
        self._call_in_loop(self._unplug)

    def vanish(self) -> None:
        self.unplug()

    def replug(self) -> None:
        """The device comes back powered up, under new /dev/pts names, by-id links repointed."""
        self._call_in_loop(self._replug)

    def reset(self) -> None:
        """What AT+CFUN=1,1 (or AT+CRESET) does: ports go away, come back after reset_seconds."""
        self._call_in_loop(self._schedule_reset)

    def _unplug(self) -> None:
        if not self._plugged:
            return
        if self._call is not None:
            self._end_call("network")
        for task in list(self._bg_tasks):
            task.cancel()
        self._audio.stop()
        self._detach_readers()
        self._close_ptys()
        if self.external_audio is not None:
            self.external_audio.close()
        self._urc_inside.clear()
        self._log(self._primary, "<", "(unplugged)")
        self._notify()

    def _replug(self) -> None:
        if self._plugged or self._stopped:
            return
        self._wedged = False
        self._power_on_state()
        self._open_ptys()
        self._attach_readers()
        if self.external_audio is not None:
            self.external_audio.open()
        self._audio.run(False)
        self._log(self._primary, "<", f"(plugged in as {self.at_port})")
        self._notify()
        self._boot(initial=False)
        self._run_replug_callbacks()

    # ---------------------------------------------------------------- network and SIM

    def lose_registration(self, stat: int = 2) -> None:
        """Coverage is lost: registration goes to stat (2 searching, 3 denied, 0 not searching);
        a call in progress drops."""
        if stat not in (0, 2, 3, 4):
            raise ValueError("lose_registration wants stat 0, 2, 3 or 4")
        self._call_in_loop(self._set_coverage, False, stat)

    def regain_registration(self, roaming: bool = False) -> None:
        self._call_in_loop(self._set_coverage, True, 5 if roaming else 1)

    def set_signal(self, rssi: int) -> None:
        """+CSQ <rssi> (0..31, 99 unknown)."""
        if not (0 <= rssi <= 31 or rssi == 99):
            raise ValueError("rssi must be 0..31 or 99")
        self._call_in_loop(self._signal_changed, rssi)

    def sim_missing(self, missing: bool = True) -> None:
        """The SIM is pulled (or put back): +CPIN? gives +CME ERROR: 10, registration is lost."""
        self._call_in_loop(self._set_sim, "missing" if missing else "ready", "")

    def require_pin(self, pin: str = "1234") -> None:
        """The SIM wants its PIN: +CPIN: SIM PIN until AT+CPIN="<pin>"."""
        self._call_in_loop(self._set_sim, "pin", pin)

    def _set_coverage(self, coverage: bool, stat: int) -> None:
        self._coverage = coverage
        self._no_coverage_stat = stat if not coverage else self._no_coverage_stat
        self._home_stat = stat if coverage else self._home_stat
        self._update_registration()

    def _signal_changed(self, rssi: int) -> None:
        self._rssi = rssi

    def _set_sim(self, state: str, pin: str) -> None:
        before = self._sim
        self._sim, self._sim_pin = state, pin
        if state == "missing" and before != "missing":
            for line in self.MISSING_SIM_URCS:
                self._urc(line)
        elif state == "ready" and before == "missing":
            self._urc("+CPIN: READY")
        self._update_registration()
