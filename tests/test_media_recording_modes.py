"""Recording modes, pause/resume and who is heard: the recorder, the mono mix-down, the policy that
decides a call's mode, the config keys, the flow action, the agent commands and the daemon's repair."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.api.commands import CommandHandler
from gateway.api.topics import Topics
from gateway.center.agents import AgentConfig
from gateway.center.passwords import hash_password
from gateway.center.queues import QueueConfig, WaitingContact
from gateway.center.records import ContactStore
from gateway.center.router import Center
from gateway.clock import ManualClock
from gateway.config import ConfigError, load_config
from gateway.daemon import Daemon
from gateway.flows.interpreter import run_flow
from gateway.flows.validate import SUPPORTED_TYPES, validate_flow_text
from gateway.media.frames import pcm_to_frames
from gateway.media.recorder import CallRecorder, RecordingPolicy, downmix_to_mono
from gateway.media.tones import dominant_frequency, rms_dbfs, sine
from gateway.media.wavfile import WavError
from gateway.sms_contact import SmsContact

REAL_FLOWS = Path(__file__).resolve().parents[2] / "shared" / "flows" / "real"


def read(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        channels = w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return channels, data.reshape(-1, channels)


def tone(freq: float, seconds: float) -> list[bytes]:
    return pcm_to_frames(sine(freq, seconds, amplitude=0.3))


def feed(rec: CallRecorder, caller: list[bytes], agent: list[bytes] | None = None) -> None:
    for i, frame in enumerate(caller):
        rec.write(frame, agent[i] if agent else None)


# --- the recorder: pause and resume -----------------------------------------------------------------

def test_nothing_is_written_while_paused_and_the_pause_is_listed(tmp_path):
    path = tmp_path / "call.wav"
    rec = CallRecorder(path)
    feed(rec, tone(700, 1.0))
    assert rec.pause() is True and rec.paused
    assert rec.pause() is False                      # pausing twice is one pause
    feed(rec, tone(1500, 1.5))                        # a card number being read out
    assert rec.duration == pytest.approx(1.0)
    assert rec.resume() is True and not rec.paused
    assert rec.resume() is False
    feed(rec, tone(700, 0.5))
    assert rec.close() == pytest.approx(1.5)
    assert rec.pauses == [{"at": 1.0, "seconds": 1.5}]
    channels, audio = read(path)
    assert channels == 2 and len(audio) == 12000
    assert abs(dominant_frequency(audio[:, 0]) - 700) < 3      # the 1500 Hz part never reached the file


def test_close_ends_an_open_pause(tmp_path):
    rec = CallRecorder(tmp_path / "c.wav")
    feed(rec, tone(700, 0.4))
    rec.pause()
    feed(rec, tone(700, 0.6))
    assert rec.close() == pytest.approx(0.4)
    assert rec.pauses == [{"at": 0.4, "seconds": 0.6}] and not rec.paused
    rec.close()
    assert len(rec.pauses) == 1


# --- the recorder: who is heard --------------------------------------------------------------------

@pytest.mark.parametrize("caller, agent", [(True, False), (False, True)])
def test_the_unheard_side_is_silence(tmp_path, caller, agent):
    path = tmp_path / "c.wav"
    rec = CallRecorder(path)
    rec.record_sides(caller, agent)
    feed(rec, tone(600, 0.5), tone(1000, 0.5))
    rec.close()
    _, audio = read(path)
    heard, silent = (0, 1) if caller else (1, 0)
    assert len(audio) == 4000
    assert rms_dbfs(audio[:, silent]) == -np.inf
    assert abs(dominant_frequency(audio[:, heard]) - (600 if caller else 1000)) < 3


def test_nobody_heard_writes_nothing_and_recording_on_again_continues(tmp_path):
    path = tmp_path / "c.wav"
    rec = CallRecorder(path)
    feed(rec, tone(600, 0.2))
    rec.record_sides(False, False)
    feed(rec, tone(600, 1.0))
    assert rec.duration == pytest.approx(0.2)
    rec.record_sides(True, True)
    feed(rec, tone(600, 0.2))
    assert rec.close() == pytest.approx(0.4) and rec.pauses == []     # off is not a pause
    assert len(read(path)[1]) == 3200


# --- the mono mix-down -----------------------------------------------------------------------------

def test_downmix_replaces_the_stereo_file_by_its_mix(tmp_path):
    path = tmp_path / "c.wav"
    rec = CallRecorder(path)
    feed(rec, tone(600, 2.5), tone(1000, 2.5))       # more than one mix-down block
    loud = np.full(160, 30000, dtype="<i2").tobytes()
    rec.write(loud, loud)
    rec.close()
    assert downmix_to_mono(path) == pytest.approx(2.52)
    channels, audio = read(path)
    assert channels == 1 and len(audio) == 20160
    expected = sine(600, 2.5, amplitude=0.3).astype(np.int32) + sine(1000, 2.5, amplitude=0.3)
    assert np.array_equal(audio[:20000, 0], expected)
    assert audio[20000:, 0].max() == 32767                           # clipped, not wrapped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.wav"]   # no temporary file left
    before = path.read_bytes()
    assert downmix_to_mono(path) == pytest.approx(2.52)              # a mono file is left as it is
    assert path.read_bytes() == before


def test_downmix_refuses_what_is_not_a_call_recording(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all")
    with pytest.raises(WavError, match="junk.wav: not a readable WAV"):
        downmix_to_mono(junk)
    eight_bit = tmp_path / "u8.wav"
    with wave.open(str(eight_bit), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(100))
    with pytest.raises(WavError, match="8-bit samples"):
        downmix_to_mono(eight_bit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.wav", "u8.wav"]


# --- the policy: gateway default, flow, queue ------------------------------------------------------

def test_policy_default_and_queue():
    policy = RecordingPolicy()
    assert policy.mode == "stereo" and policy.caller_heard and policy.agent_heard
    policy.from_queue(None)
    assert policy.mode == "stereo"
    policy.from_queue("mono")
    assert policy.mode == "mono"
    policy.from_queue("off")
    assert policy.mode == "off"
    assert RecordingPolicy(layout="mono").mode == "mono"


def test_the_flow_wins_over_the_queue_and_a_later_flow_setting_over_an_earlier_one():
    policy = RecordingPolicy()
    policy.from_flow(["Customer"])
    assert policy.mode == "stereo" and policy.caller_heard and not policy.agent_heard
    policy.from_flow([])
    assert policy.mode == "off"
    policy.from_flow(["Agent", "Customer"])
    policy.from_queue("off")                      # the flow said who is heard: the queue cannot undo it
    assert policy.mode == "stereo"
    policy.from_queue("mono")                     # but the flow said nothing about the layout
    assert policy.mode == "mono"

    flow_layout = RecordingPolicy()
    flow_layout.from_flow(["Agent"], "mono")
    flow_layout.from_queue("stereo")
    assert flow_layout.mode == "mono" and flow_layout.agent_heard and not flow_layout.caller_heard
    flow_layout.from_flow([])
    assert flow_layout.mode == "off"


def test_policy_refuses_unknown_values():
    with pytest.raises(ValueError, match="'Supervisor'"):
        RecordingPolicy().from_flow(["Agent", "Supervisor"])
    with pytest.raises(ValueError, match="layout 'surround'"):
        RecordingPolicy().from_flow(["Agent"], "surround")
    with pytest.raises(ValueError, match="queue recording 'on'"):
        RecordingPolicy().from_queue("on")
    with pytest.raises(ValueError, match="layout 'quad'"):
        RecordingPolicy(layout="quad")


# --- config ----------------------------------------------------------------------------------------

def write_config(tmp_path: Path, gateway: str = "", queue: str = "") -> Path:
    path = tmp_path / "callgate.toml"
    path.write_text(f'[gateway]\n{gateway}\n[[queues]]\nid = "support"\n{queue}\n'
                    '[[queues]]\nid = "sales"\n')
    return path


def test_recording_keys_and_their_defaults(tmp_path):
    cfg = load_config(write_config(tmp_path))
    assert cfg.recording is True and cfg.recording_mode == "stereo"
    assert [q.recording for q in cfg.queues] == [None, None]
    cfg = load_config(write_config(tmp_path, 'recording_mode = "mono"', 'recording = "off"'))
    assert cfg.recording_mode == "mono" and [q.recording for q in cfg.queues] == ["off", None]
    for value in ("stereo", "mono"):
        assert load_config(write_config(tmp_path, queue=f'recording = "{value}"')).queues[0].recording == value


@pytest.mark.parametrize("gateway, queue, message", [
    ('recording_mode = "surround"', "",
     """gateway.recording_mode: must be "stereo" or "mono", found 'surround'"""),
    ('recording_mode = "off"', "", """gateway.recording_mode: must be "stereo" or "mono", found 'off'"""),
    ("recording_mode = 2", "", "gateway.recording_mode: expected str, got int 2"),
    ("", 'recording = "on"', """queues[0].recording: must be "stereo", "mono" or "off", found 'on'"""),
    ("", "recording = false", "queues[0].recording: expected str, got bool False"),
    ("", 'recording_mod = "mono"', "queues[0].recording_mod: unknown key (typo?)"),
])
def test_recording_config_errors_name_the_file_and_the_key(tmp_path, gateway, queue, message):
    path = write_config(tmp_path, gateway, queue)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_queue_config_checks_recording():
    with pytest.raises(ValueError, match="queue 'q': recording must be"):
        QueueConfig("q", "Q", recording="loud")


# --- the flow action -------------------------------------------------------------------------------

def action(ident: str, type_: str, params: dict, next_action: str | None = None) -> dict:
    out = {"Identifier": ident, "Type": type_, "Parameters": params, "Transitions": {}}
    if next_action:
        out["Transitions"]["NextAction"] = next_action
    return out


def recording_flow(*behaviors: dict) -> dict:
    actions = [action(f"rec{i}", "UpdateContactRecordingBehavior", b, f"rec{i + 1}") for i, b in enumerate(behaviors)]
    actions[-1]["Transitions"]["NextAction"] = "bye"
    actions.append(action("bye", "DisconnectParticipant", {}))
    return {"Version": "2019-10-30", "StartAction": "rec0", "Actions": actions}


def check(doc: dict):
    return validate_flow_text(json.dumps(doc, indent=1), "<flow>")


def test_the_action_is_supported_in_the_shapes_real_flows_use():
    assert "UpdateContactRecordingBehavior" in SUPPORTED_TYPES
    flow, issues = check(recording_flow(*({"RecordingBehavior": {"RecordedParticipants": p}}
                                          for p in (["Agent"], ["Customer"], [], ["Agent", "Customer"]))))
    assert flow is not None and issues == []
    flow, issues = check(recording_flow({"RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"],
                                                               "Channels": "Mono"}}))
    assert flow is not None and issues == []


def test_real_flows_with_the_action_raise_no_error_for_it():
    found = 0
    for path in sorted(REAL_FLOWS.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        if "UpdateContactRecordingBehavior" not in text:
            continue
        _, issues = validate_flow_text(text, str(path))
        recording_actions = {a.get("Identifier") for a in json.loads(text).get("Actions", [])
                             if isinstance(a, dict) and a.get("Type") == "UpdateContactRecordingBehavior"}
        mine = [i for i in issues if i.severity == "error" and i.identifier in recording_actions]
        assert mine == [], [str(i) for i in mine]
        found += 1
    assert found >= 5


def test_ignored_parameters_are_warnings():
    flow, issues = check(recording_flow({"RecordingBehavior": {"RecordedParticipants": [],
                                                               "IVRRecordingBehavior": "Enabled"},
                                         "AnalyticsBehavior": {"Enabled": "True"}}))
    assert flow is not None
    assert sorted((i.severity, i.path) for i in issues) == [
        ("warning", "$.Actions[0].Parameters.AnalyticsBehavior"),
        ("warning", "$.Actions[0].Parameters.RecordingBehavior.IVRRecordingBehavior")]


@pytest.mark.parametrize("params, path, message", [
    ({}, "$.Actions[0].Parameters", "missing RecordingBehavior"),
    ({"RecordingBehavior": "on"}, "$.Actions[0].Parameters.RecordingBehavior",
     'RecordingBehavior must be an object, found string "on"'),
    ({"RecordingBehavior": {}}, "$.Actions[0].Parameters.RecordingBehavior", "missing RecordedParticipants"),
    ({"RecordingBehavior": {"RecordedParticipants": "Agent"}},
     "$.Actions[0].Parameters.RecordingBehavior.RecordedParticipants",
     'RecordedParticipants must be a list, found string "Agent"'),
    ({"RecordingBehavior": {"RecordedParticipants": ["Agent", "customer"]}},
     "$.Actions[0].Parameters.RecordingBehavior.RecordedParticipants[1]",
     'participant must be "Agent" or "Customer", found string "customer"'),
    ({"RecordingBehavior": {"RecordedParticipants": [], "Channels": "Quad"}},
     "$.Actions[0].Parameters.RecordingBehavior.Channels", 'Channels must be "Stereo" or "Mono", found string "Quad"'),
])
def test_bad_parameters_are_errors_with_their_path(params, path, message):
    flow, issues = check(recording_flow(params))
    assert flow is None
    [issue] = [i for i in issues if i.severity == "error"]
    assert issue.path == path and issue.message.startswith(message) and issue.identifier == "rec0"
    assert issue.line is not None


def test_the_action_needs_a_next_action_and_warns_on_repeats():
    doc = recording_flow({"RecordingBehavior": {"RecordedParticipants": ["Agent", "Agent"]}})
    flow, issues = check(doc)
    assert flow is not None
    assert [(i.severity, i.path, i.message) for i in issues] == [
        ("warning", "$.Actions[0].Parameters.RecordingBehavior.RecordedParticipants[1]", '"Agent" is listed twice')]
    del doc["Actions"][0]["Transitions"]["NextAction"]
    flow, issues = check(doc)
    assert flow is None and any(i.message.startswith("missing Transitions.NextAction") for i in issues)


class RecordedCall:
    """A voice contact as the flow sees it, keeping what set_recording was told."""

    def __init__(self) -> None:
        self.contact_id, self.attributes = "c-1", {}
        self.customer_number, self.system_number, self.queue_name = "+15550100", "+15550199", None
        self.settings: list[tuple[list[str], str | None]] = []
        self.disconnected = False

    def set_recording(self, participants, layout=None):
        self.settings.append((participants, layout))

    async def disconnect(self):
        self.disconnected = True


def run(doc: dict, contact):
    flow, issues = check(doc)
    assert flow is not None, issues
    return asyncio.run(asyncio.wait_for(run_flow(flow, contact, prompts=None, clock=ManualClock()), 5))


def test_the_interpreter_hands_each_setting_to_the_call_in_order():
    contact = RecordedCall()
    result = run(recording_flow({"RecordingBehavior": {"RecordedParticipants": ["Customer"]}},
                                {"RecordingBehavior": {"RecordedParticipants": []}},
                                {"RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"],
                                                       "Channels": "Mono"}}), contact)
    assert result.outcome == "disconnected" and contact.disconnected
    assert [s.branch for s in result.path] == ["next", "next", "next", "disconnected"]
    assert contact.settings == [(["Customer"], None), ([], None), (["Agent", "Customer"], "mono")]


def test_an_sms_contact_passes_the_action_by():
    sms = SmsContact("sms-1", "+15550100", "hello", "+15550199")
    result = run(recording_flow({"RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"]}}), sms)
    assert result.outcome == "disconnected" and [s.branch for s in result.path] == ["next", "disconnected"]


# --- the agent commands ----------------------------------------------------------------------------

class Commands:
    """The real CommandHandler and Center; the gateway's side of a call is the `calls` dict."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        agents = [AgentConfig(a, a.title(), hash_password(f"{a}-pw", iterations=1000)) for a in ("alice", "bob")]
        self.center = Center([QueueConfig("support", "Support")], agents, clock=self.clock)
        self.topics = Topics("gw")
        self.sent: list[tuple[str, dict]] = []
        self.calls: dict[str, str] = {}              # contact id -> "recording" | "paused" | "off"
        self.handler = CommandHandler(lambda t, p: self.sent.append((t, json.loads(p))), self.topics, self.center,
                                      on_hangup=lambda a, c: None, on_recording=self.recording)

    def recording(self, contact_id: str, pause: bool) -> str | None:
        if contact_id not in self.calls:
            return None
        if self.calls[contact_id] != "off":
            self.calls[contact_id] = "paused" if pause else "recording"
        return self.calls[contact_id]

    def send(self, agent: str, **command) -> dict:
        self.handler.handle(f"callgate/gw/agent/{agent}/cmd", json.dumps(command).encode())
        return self.sent[-1][1]


def test_an_agent_pauses_and_resumes_its_own_call_only():
    rig = Commands()
    for agent in ("alice", "bob"):
        assert rig.send(agent, action="login", password=f"{agent}-pw")["ok"]
        assert rig.send(agent, action="available")["ok"]
    contact = WaitingContact("c-1", "+15550100", "gsm1", "support", rig.clock.monotonic(), rig.clock.time())
    assert rig.center.enqueue(contact) == "queued"
    offered = next(a for a in ("alice", "bob") if rig.center.agent_view(a)["offer"])
    other = "bob" if offered == "alice" else "alice"
    assert rig.send(offered, id="a1", action="accept", contact_id="c-1")["ok"]
    rig.calls["c-1"] = "recording"

    reply = rig.send(offered, id="p1", action="pause_recording", contact_id="c-1")
    assert reply == {"id": "p1", "ok": True, "action": "pause_recording", "contact_id": "c-1", "recording": "paused"}
    assert rig.send(offered, action="pause_recording", contact_id="c-1")["recording"] == "paused"   # idempotent
    refused = rig.send(other, id="x", action="resume_recording", contact_id="c-1")
    assert refused["ok"] is False and refused["code"] == "not_your_contact"
    assert refused["error"] == f"contact c-1 is not agent {other}'s call (it is not on a call)"
    assert rig.calls["c-1"] == "paused"                                      # bob's command changed nothing
    wrong = rig.send(offered, action="pause_recording", contact_id="c-9")
    assert wrong["code"] == "not_your_contact" and "it is on call with c-1" in wrong["error"]
    assert rig.send(offered, action="resume_recording", contact_id="c-1")["recording"] == "recording"

    rig.calls["c-1"] = "off"
    off = rig.send(offered, action="pause_recording", contact_id="c-1")
    assert off["code"] == "not_recording" and off["error"] == "contact c-1 is not being recorded"
    del rig.calls["c-1"]
    assert rig.send(offered, action="pause_recording", contact_id="c-1")["code"] == "not_on_call"
    missing = rig.send(offered, action="pause_recording")
    assert missing["code"] == "bad_request" and "$.contact_id is required for 'pause_recording'" in missing["error"]
    assert {t for t, _ in rig.sent} == {"callgate/gw/agent/alice/reply", "callgate/gw/agent/bob/reply"}


# --- the daemon: a crash leaves stereo; the record's mode is applied at the next start ----------------

def crashed_recording(path: Path, seconds: float) -> None:
    """A stereo recording as a kill -9 leaves it: audio on disk, sizes in the header never patched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = CallRecorder(path)
    feed(rec, tone(600, seconds), tone(1000, seconds))
    rec._flush()
    with open(path, "r+b") as f:        # as if the sizes were never written
        f.seek(4)
        f.write(bytes(4))
        f.seek(40)
        f.write(bytes(4))


def test_restart_applies_the_recorded_mode_to_a_recording_cut_short(tmp_path):
    config = write_config(tmp_path, f'data_dir = "{tmp_path / "data"}"')
    daemon = Daemon(load_config(config), clock=ManualClock())
    rec_dir = tmp_path / "data" / "recordings" / "2026-01-01"
    daemon.store = ContactStore(tmp_path / "contacts.db")
    for cid, mode in (("c-mono", "mono"), ("c-off", "off"), ("c-stereo", "stereo")):
        crashed_recording(rec_dir / f"{cid}.wav", 1.0)
        daemon.store.upsert(cid, initiated_at=1.0, recording_path=str(rec_dir / f"{cid}.wav"), recording_mode=mode)
    # a mono mix-down the daemon died in: the stereo original and a partial temporary file
    finished = rec_dir / "c-done.wav"
    with CallRecorder(finished) as rec:
        feed(rec, tone(600, 0.5), tone(1000, 0.5))
    (rec_dir / "c-done.wav.mono-tmp").write_bytes(b"RIFF partial")

    daemon._close_dangling_records()
    daemon._finish_interrupted_downmixes()

    mono = daemon.store.get("c-mono")
    assert mono["recording_seconds"] == 1.0 and mono["disconnect_reason"] == "gateway_restart"
    assert read(rec_dir / "c-mono.wav")[0] == 1
    assert read(rec_dir / "c-stereo.wav")[0] == 2 and daemon.store.get("c-stereo")["recording_seconds"] == 1.0
    off = daemon.store.get("c-off")
    assert off["recording_path"] is None and off["recording_seconds"] is None
    assert not (rec_dir / "c-off.wav").exists()
    assert read(finished)[0] == 1 and not (rec_dir / "c-done.wav.mono-tmp").exists()
    daemon.store.close()
