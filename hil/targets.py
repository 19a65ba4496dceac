"""Where a scenario runs: an emulator playing a modem profile (EmulatorTarget, from hil/emulators.toml),
or two real modems calling each other (HardwareTarget). A target opens the far end and says how to build
the Line under test (profile, ports, audio opener, locator); an emulator target can also make a witness,
a second emulated modem of the same kind whose line must keep working while the first one is faulted.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gateway.modem.ports import INVENTORY_ENV
from gateway.modem.profile import Profile, load_profile
from gateway.tomltable import TomlTable, read_toml
from hil.far_end import GSM_FAULTS, V253_FAULTS, EmulatorFar, FarEnd, FarRecorder, ModemFar

EMULATORS_FILE = Path(__file__).resolve().parent / "emulators.toml"
V253_BUSY_INTERVAL = 0.3        # seconds between busy-tone cadences after the far end hangs up
WITNESS_IMEI = "990000000000017"
# A GSM module takes 10-25 s to come back after AT+CFUN=1,1; the emulated one takes this long, longer
# than the line's first reopen back-off, so the line sees the ports gone as it would on hardware.
RESET_SECONDS = 3.0


class TargetError(ValueError):
    """A target that cannot be set up (unknown profile, bad emulators.toml, unreachable port)."""


@dataclass(frozen=True)
class EmulatorPlan:
    profile_id: str
    emulator: str           # gsm | v253
    family: str             # gsm family or v253 dialect
    soundcard: bool
    far_number: str
    line_number: str
    ring_interval: float


def emulator_plans(path: Path = EMULATORS_FILE) -> dict[str, EmulatorPlan]:
    """profile id -> how to emulate it; errors name the file and key."""
    root = TomlTable(read_toml(path, TargetError), Path(path.name), TargetError)
    defaults_t = root.table("defaults")
    defaults = {}
    for kind in ("gsm", "v253"):
        t = defaults_t.table(kind)
        defaults[kind] = (t.get("far_number", str), t.get("line_number", str), t.get("ring_interval", float))
        t.finish()
    defaults_t.finish()
    plans = {}
    profiles_t = root.table("profiles")
    for pid in profiles_t.data:
        t = profiles_t.table(pid)
        kind = t.choice("emulator", ("gsm", "v253"))
        family = t.get("family" if kind == "gsm" else "dialect", str)
        soundcard = t.get("audio", str, "", check=lambda v: None if v in ("", "soundcard") else
                          f"{v!r} is not one of soundcard") == "soundcard"
        far, own, ring = defaults[kind]
        plans[pid] = EmulatorPlan(pid, kind, family, soundcard, t.get("far_number", str, far),
                                  t.get("line_number", str, own), t.get("ring_interval", float, ring))
        t.finish()
    profiles_t.finish()
    root.finish()
    return plans


@dataclass
class LineSetup:
    """Everything needed to build the Line under test (or a witness line)."""

    profile: Profile
    at_port: str
    audio_port: str | None
    audio_opener: Callable | None = None
    locate: Callable | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sound_card_opener(profile: Profile):
    if profile.audio.transport != "sounddevice":
        return None

    async def open_card(device: str):
        from gateway.transport.sound_card import open_sound_card
        return await open_sound_card(device, sample_rate=profile.audio.sample_rate, frame_ms=profile.audio.frame_ms)
    return open_card


class EmulatedModem:
    """One emulator for a profile, with its port inventory file kept current across unplug/replug."""

    def __init__(self, plan: EmulatorPlan, workdir: Path, *, name: str, ring_interval: float | None,
                 imei: str | None = None, location: str = "1-1.2") -> None:
        self.plan = plan
        self.profile = load_profile(plan.profile_id)
        self.workdir = workdir
        self.inventory = str(workdir / f"{name}-ports.json")
        self.by_id_dir = str(workdir / f"{name}-by-id")
        self.card = None
        ring = ring_interval or plan.ring_interval
        if plan.soundcard:
            from hil.soundcard import EmulatedSoundCard
            self.card = EmulatedSoundCard()
            self.card.open()        # PortAudio must see the card before the line opens it
        if plan.emulator == "gsm":
            from hil.gsm import create
            options: dict[str, Any] = {"ring_interval": ring, "by_id_dir": self.by_id_dir, "usb_path": location,
                                       "reset_seconds": RESET_SECONDS}
            if imei:
                options["imei"] = imei
            if self.card is not None:
                options["audio_side"] = self.card
            self.emulator = create(plan.family, **options)
        else:
            from hil.v253 import V253Emulator
            self.emulator = V253Emulator(plan.family, ring_interval=ring, by_id_dir=self.by_id_dir,
                                         busy_interval=V253_BUSY_INTERVAL, location=location)
        self.far = EmulatorFar(self.emulator, plan.far_number, style=plan.emulator)

    def start(self) -> None:
        self.emulator.start()
        self.emulator.on_replug(self.write_inventory)
        self.write_inventory()

    def write_inventory(self) -> None:
        self.emulator.write_inventory(self.inventory)

    def stop(self) -> None:
        try:
            self.emulator.stop()
        finally:
            if self.card is not None:
                self.card.close()

    def by_id(self, device: str | None) -> str | None:
        """The /dev/serial/by-id style link of one of the emulator's ttys."""
        return next((row["by_id"] for row in self.emulator.port_inventory()
                     if device and row.get("device") == device and row.get("by_id")), None)

    def line_setup(self, *, by_id: bool, busy: Callable[[], set]) -> LineSetup:
        profile = self.profile
        at = self.emulator.at_port
        if self.card is not None:
            audio = self.card.name
        elif profile.audio.transport == "serial":
            audio = self.emulator.audio_port
        else:
            audio = None
        if by_id:
            at = self.by_id(at) or at
            audio = audio if self.card is not None else self.by_id(audio) or audio

        async def locate(identity: dict[str, str]):
            from gateway.modem.relocate import relocate
            return await relocate(identity, profile, busy=busy())
        return LineSetup(profile, at, audio, sound_card_opener(profile), locate)


class EmulatorTarget:
    """A scenario against the emulator of one profile (plus a witness emulator when the scenario asks)."""

    kind = "emulator"

    def __init__(self, profile_id: str, *, plans: dict[str, EmulatorPlan] | None = None) -> None:
        plans = plans if plans is not None else emulator_plans()
        if profile_id not in plans:
            raise TargetError(f"no emulator for profile {profile_id!r} in {EMULATORS_FILE.name} "
                              f"(known: {', '.join(sorted(plans))})")
        self.plan = plans[profile_id]
        self.name = profile_id
        self.profile = load_profile(profile_id)
        self.modem: EmulatedModem | None = None
        self.witness: EmulatedModem | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._env_before: str | None = None

    @property
    def values(self) -> dict[str, str]:
        return {"far_number": self.plan.far_number, "line_number": self.plan.line_number,
                "reset_command": self.profile.recovery.reset}

    def capabilities(self) -> frozenset[str]:
        """What the profile can do, intersected with what its emulator can play."""
        style = self.plan.emulator
        caps = {"inbound", "outbound", "audio", "caller_id", "dtmf_in", "transcript", "witness"}
        if self.profile.dtmf.send:
            caps.add("dtmf_out")
        if self.profile.sms.supported and style == "gsm":
            caps.add("sms")
        if self.profile.health.queries and style == "gsm":
            caps.add("registration")
        if style == "gsm":
            caps.add("imei")
        caps |= GSM_FAULTS if style == "gsm" else V253_FAULTS
        return frozenset(caps)

    def missing(self, needs: frozenset[str]) -> str | None:
        lacking = sorted(needs - self.capabilities())
        if not lacking:
            return None
        return f"profile {self.name} on the {self.plan.emulator} emulator lacks {', '.join(lacking)}"

    async def open(self, *, ring_interval: float | None, by_id: bool, witness: bool) -> tuple[LineSetup, FarEnd]:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"hil-{self.name}-")
        work = Path(self._tmp.name)
        self.modem = EmulatedModem(self.plan, work, name="line", ring_interval=ring_interval)
        await asyncio.to_thread(self.modem.start)
        inventories = [self.modem.inventory]
        if witness:
            self.witness = EmulatedModem(self.plan, work, name="witness", ring_interval=ring_interval,
                                         imei=WITNESS_IMEI, location="1-1.4")
            await asyncio.to_thread(self.witness.start)
        self._env_before = os.environ.get(INVENTORY_ENV)
        os.environ[INVENTORY_ENV] = os.pathsep.join(inventories)
        setup = self.modem.line_setup(by_id=by_id, busy=self._witness_ports)
        return setup, self.modem.far

    def _witness_ports(self) -> set:
        if self.witness is None:
            return set()
        return {self.witness.emulator.at_port}

    def witness_setup(self) -> tuple[LineSetup, FarEnd] | None:
        if self.witness is None:
            return None
        return self.witness.line_setup(by_id=False, busy=lambda: set()), self.witness.far

    def after_fault(self) -> None:
        """Keep the port inventory true after an unplug (the replug callback covers the other way)."""
        if self.modem is not None:
            self.modem.write_inventory()

    def transcript(self) -> list[tuple[float, str, str]]:
        return self.modem.far.transcript() if self.modem is not None else []

    async def close(self) -> None:
        for modem in (self.witness, self.modem):
            if modem is not None:
                await asyncio.to_thread(modem.stop)
        self.modem = self.witness = None
        if self._env_before is None:
            os.environ.pop(INVENTORY_ENV, None)
        else:
            os.environ[INVENTORY_ENV] = self._env_before
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class HardwareTarget:
    """Two real modems: the line under test on `port`, the far end on `far_port`; each knows the
    other's number. Profiles are named or detected from what the modems answer."""

    kind = "hardware"

    def __init__(self, *, port: str, audio_port: str | None, far_port: str, far_audio_port: str | None,
                 far_number: str, line_number: str, profile: str | None = None,
                 far_profile: str | None = None) -> None:
        self.port, self.audio_port = port, audio_port
        self.far_port, self.far_audio_port = far_port, far_audio_port
        self.far_number, self.line_number = far_number, line_number
        self._profile_id, self._far_profile_id = profile, far_profile
        self.profile: Profile | None = load_profile(profile) if profile else None
        self.far_profile: Profile | None = load_profile(far_profile) if far_profile else None
        self.name = f"hardware:{port}"
        self.far_line = None
        self._far_task: asyncio.Task | None = None
        self._far: ModemFar | None = None

    @property
    def values(self) -> dict[str, str]:
        reset = self.profile.recovery.reset if self.profile else ""
        return {"far_number": self.far_number, "line_number": self.line_number, "reset_command": reset}

    async def resolve_profiles(self) -> None:
        """Detect the profiles not named on the command line."""
        if self.profile is None:
            self.profile = await _detect(self.port)
        if self.far_profile is None:
            self.far_profile = await _detect(self.far_port)
        self.name = f"hardware:{self.profile.id}"

    def capabilities(self) -> frozenset[str]:
        assert self.profile is not None and self.far_profile is not None
        caps = {"inbound", "outbound", "audio", "caller_id", "dtmf_in"}
        if self.profile.dtmf.send:
            caps.add("dtmf_out")
        if self.profile.sms.supported and self.far_profile.sms.supported:
            caps.add("sms")
        if self.profile.health.queries:
            caps.add("registration")
        if self.profile.calls.style != "v253":
            caps.add("imei")
        return frozenset(caps)

    def missing(self, needs: frozenset[str]) -> str | None:
        lacking = sorted(needs - self.capabilities())
        if not lacking:
            return None
        faults = [n for n in lacking if n not in ("sms", "dtmf_out", "registration")]
        why = "needs an emulator (faults and transcripts cannot be injected into real modems)" if faults else \
            f"the modems ({self.profile.id}, far {self.far_profile.id}) lack {', '.join(lacking)}"
        return f"{', '.join(lacking)}: {why}"

    async def open(self, *, ring_interval: float | None, by_id: bool, witness: bool) -> tuple[LineSetup, FarEnd]:
        from gateway.modem.line import Line, LineState
        assert self.profile is not None and self.far_profile is not None
        recorder = FarRecorder()
        far_audio = self.far_audio_port or (self.far_profile.audio.device
                                            if self.far_profile.audio.transport == "sounddevice" else None)
        self.far_line = Line("far", self.far_profile, self.far_port, far_audio, recorder,
                             audio_opener=sound_card_opener(self.far_profile))
        self._far_task = asyncio.create_task(self.far_line.run())
        deadline = asyncio.get_running_loop().time() + 60
        while self.far_line.state != LineState.IDLE:
            if self._far_task.done() or asyncio.get_running_loop().time() > deadline:
                raise TargetError(f"the far modem on {self.far_port} did not come up: {self.far_line.error}")
            await asyncio.sleep(0.1)
        self._far = ModemFar(self.far_line, recorder, self.far_number)
        audio = self.audio_port or (self.profile.audio.device if self.profile.audio.transport == "sounddevice" else None)
        return LineSetup(self.profile, self.port, audio, sound_card_opener(self.profile), None), self._far

    def witness_setup(self):
        return None

    def after_fault(self) -> None:
        pass

    def transcript(self) -> list[tuple[float, str, str]]:
        return []

    async def close(self) -> None:
        if self._far is not None:
            await self._far.close()
        if self._far_task is not None:
            if self.far_line is not None:
                await self.far_line.hangup("test_over")
            self._far_task.cancel()
            await asyncio.gather(self._far_task, return_exceptions=True)


async def _detect(port: str) -> Profile:
    from gateway.modem.detect import scan
    from gateway.modem.ports import PortInfo
    from gateway.modem.profile import load_profiles
    findings = await scan([PortInfo(device=port)], load_profiles())
    found = next((f for f in findings if f.profile_id), None)
    if found is None:
        status = findings[0].status if findings else "no answer"
        raise TargetError(f"{port}: no profile matches this modem ({status}); name one with --profile")
    return load_profile(found.profile_id)
