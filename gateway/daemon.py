"""The daemon: reads the config, builds broker, MQTT API, center, lines and dashboard, and wires them.

Lines report calls here; each call becomes a ContactSession; Center events become MQTT state; agent
commands come back through the CommandHandler; SMS and the technician's operations go to LineServices.
One Supervisor owns every background task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from gateway import __version__
from gateway.agent_calls import AgentCalls
from gateway.agent_leg import AgentLeg
from gateway.api.audio_relay import AudioRelay
from gateway.api.admin import AdminHandler
from gateway.api.commands import CommandHandler
from gateway.api.publisher import StatePublisher, encode
from gateway.api.topics import Topics
from gateway.center.audit import AuditLog
from gateway.center.events import AfterContactWorkEnded, ContactConnected
from gateway.center.records import ContactStore
from gateway.center.router import Center
from gateway.callbacks import Callbacks
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.config import Config
from gateway.contact import ContactSession
from gateway.flows.library import FlowLibrary
from gateway.flows.services import FlowServices
from gateway.flows.validate import FlowInvalid
from gateway.flows.webhook import Webhooks
from gateway.media.frames import pcm_to_frames
from gateway.media.prompts import PromptCache
from gateway.media.recorder import CallRecorder, downmix_to_mono, wav_channels
from gateway.media.voicemail import recover as recover_voicemail
from gateway.media.wavfile import WavError
from gateway.line_services import LineServices
from gateway.modem.line import Call, Line
from gateway.modem.profile import ProfileError, load_profile
from gateway.supervisor import Supervisor
from gateway.third_party_leg import TransferLines
from gateway.transport.broker import EmbeddedBroker
from gateway.transport.http_client import post_json
from gateway.transport.mqtt import MqttConnection, Will

log = logging.getLogger(__name__)

BROKER_WAIT = 10.0     # first connection to the broker; the daemon keeps retrying afterwards
STATE_FILE = "daemon.json"
RETENTION_INTERVAL = 3600.0   # seconds between two runs of the recording retention policy
FLOW_CHECK_INTERVAL = 2.0     # seconds between two looks at the flow files (hot reload)


class Daemon:
    def __init__(self, cfg: Config, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.cfg = cfg
        self.clock = clock
        self.topics = Topics(cfg.gateway_id)
        self.supervisor = Supervisor()
        self.center = Center(cfg.queues, cfg.agents, clock=clock, routing_profiles=cfg.routing_profiles or None,
                             security_profiles=cfg.security_profiles or None, break_states=cfg.break_states)
        self.audit = AuditLog(cfg.data_dir / "audit.log", clock=clock)   # every agent command and admin operation
        self.sessions: dict[str, ContactSession] = {}
        self.transfers: TransferLines | None = None     # lines calls are transferred out on, once started
        self.agent_calls: AgentCalls | None = None      # agents' outbound calls and transfers, once started
        self.callbacks: Callbacks | None = None         # queued callbacks
        self.lines: dict[str, Line] = {}
        self.flows: dict[str, object] = {}
        self.line_errors: dict[str, str] = {}
        self.broker: EmbeddedBroker | None = None
        self.mqtt: MqttConnection | None = None
        self.web = None
        self.store: ContactStore | None = None
        self.publisher: StatePublisher | None = None
        self.ws_url: str | None = None
        self.started = clock.time()
        self._stop = asyncio.Event()

    # --- start / stop -------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.cfg
        data = cfg.data_dir
        (data / "recordings").mkdir(parents=True, exist_ok=True)
        self.store = ContactStore(data / "contacts.db")
        self.callbacks = Callbacks(self.center, self.store, notify=self._tell_agent, spawn=self.supervisor.spawn,
                                   clock=self.clock)
        self._close_dangling_records(skip=self.callbacks.restore())   # a callback not yet made is kept
        self._finish_interrupted_downmixes()
        self.prompts = PromptCache(data / "prompts")
        self.flow_services = FlowServices(cfg.hours, cfg.queue_hours,   # what flows ask besides the call
                                          Webhooks(cfg.webhooks, post_json, clock=self.clock))
        self._hold_frames: dict[Path, tuple] = {}

        if cfg.mqtt.embedded:
            self.broker = EmbeddedBroker(cfg.mqtt.embedded_host, cfg.mqtt.embedded_tcp_port, cfg.mqtt.embedded_ws_port)
            await self.broker.start()
            host, port = self.broker.host, self.broker.tcp_port
            self.ws_url = cfg.mqtt.ws_url or self.broker.ws_url
        else:
            host, port = cfg.mqtt.host, cfg.mqtt.port
            self.ws_url = cfg.mqtt.ws_url
        offline = encode({"online": False})
        self.mqtt = MqttConnection(host, port, client_id=f"callgate-{cfg.gateway_id}-{os.getpid()}",
                                   username=cfg.mqtt.username, password=cfg.mqtt.password,
                                   will=Will(self.topics.status, offline), clock=self.clock)
        self.publisher = StatePublisher(self.mqtt.publish, self.topics, self.center, clock=self.clock)
        self.commands = CommandHandler(lambda t, p: self.mqtt.publish(t, p, qos=1), self.topics, self.center,
                                       on_hangup=self._agent_hung_up, on_recording=self._agent_recording,
                                       on_dial=lambda agent, cmd: self.agent_calls.dial(agent, cmd),
                                       on_transfer=lambda agent, cid, cmd: self.agent_calls.transfer(agent, cid, cmd),
                                       audit=self.audit)
        self.center.subscribe(self._on_center_event)
        self.mqtt.subscribe(self.topics.all_agent_cmds, self.commands.handle, qos=1)
        self.services = LineServices(self.lines, {lc.id: lc.number for lc in cfg.lines}, self.store, self.prompts,
                                     self.clock, lambda t, p: self.mqtt.publish(t, p, qos=1), self.topics,
                                     self.supervisor.spawn, flow_services=self.flow_services)
        self.transfers = TransferLines(self.lines, self.store, clock=self.clock)   # TransferParticipantToThirdParty
        self.agent_calls = AgentCalls(
            self.center, self.lines, self.transfers, self.store, numbers={lc.id: lc.number for lc in cfg.lines},
            queue_lines={q.id: q.outbound_line for q in cfg.queues if q.outbound_line},
            line_queues={lc.id: lc.outbound_queue for lc in cfg.lines if lc.outbound_queue}, relay=self._relay,
            notify=self._tell_agent, spawn=self.supervisor.spawn, session_of=self._session,
            hold_music=self._hold_music, clock=self.clock)
        self.callbacks.calls = self.agent_calls
        self.admin = AdminHandler(lambda t, p: self.mqtt.publish(t, p, qos=1), self.topics, self.supervisor.spawn,
                                  self.services.operations(), audit=self.audit)
        self.mqtt.subscribe(self.topics.admin_cmd, self.admin.handle, qos=1)
        self.mqtt.on_connect(self.publisher.publish_all)
        await self.mqtt.start()
        if not await self.mqtt.wait_connected(BROKER_WAIT):
            log.error("%s; serving calls anyway and retrying", self.mqtt.last_error or "MQTT broker not reachable")

        self.library = FlowLibrary(self._flow_dirs(), clock_time=self.clock.time)
        for entry in self.library.refresh():
            if entry.errors and not any(entry.path == lc.flow.resolve() for lc in cfg.lines):
                log.warning("flow %s is invalid (TransferToFlow cannot use it): %s", entry.path, entry.errors[0])
        for lc in cfg.lines:
            self._start_line(lc)
        self._publish_flows(cfg.lines)
        self.supervisor.spawn(self._watch_flows(), "flow-reload")
        self.supervisor.spawn(self.center.run(), "center")
        self.supervisor.spawn(self.callbacks.run(), "callbacks")
        if cfg.recording_keep_days or cfg.recording_max_mb:
            self.supervisor.spawn(self._prune_recordings(), "recording-retention")
        self.supervisor.spawn(self.publisher.refresh_queues(), "queue-refresh")
        if cfg.web.enabled and self.ws_url:
            from gateway.web.server import DashboardServer
            tls = {"certfile": str(cfg.web.certfile), "keyfile": str(cfg.web.keyfile) if cfg.web.keyfile else None} \
                if cfg.web.certfile else {}
            self.web = DashboardServer(cfg.web.host, cfg.web.port, ws_url=self.ws_url, gateway_id=cfg.gateway_id,
                                       flows=lambda: self.flows, flow_paths={lc.id: lc.flow for lc in cfg.lines}, **tls)
            self.web.start()
        self.publisher.set_status({"online": True, "version": __version__, "started": self.started,
                                   "lines": [lc.id for lc in cfg.lines], "queues": self.center.queue_ids})
        self._write_state_file()
        log.info("callgate %s ready: gateway %s, %d line(s), MQTT %s:%s, dashboard %s", __version__, cfg.gateway_id,
                 len(cfg.lines), host, port, self.web.url if self.web else "off")

    def _start_line(self, lc) -> None:
        try:
            profile = load_profile(lc.profile)
            flow = self.library.load(lc.flow)
            if lc.sms_flow is not None:
                self.services.sms_flows[lc.id] = self.library.load(lc.sms_flow)
        except (ProfileError, FlowInvalid) as exc:
            detail = str(exc) if isinstance(exc, ProfileError) else "; ".join(str(i) for i in exc.issues[:5])
            self.line_errors[lc.id] = detail
            log.error("line %s not started: %s", lc.id, detail)
            self.publisher.line_changed({"line": lc.id, "state": "failed", "profile": lc.profile, "call_id": None,
                                         "error": detail, "since": self.clock.time()})
            return
        self.flows[lc.id] = flow
        audio = (lc.audio_device or profile.audio.device) if profile.audio.transport == "sounddevice" else lc.audio_port
        line = Line(lc.id, profile, lc.at_port, audio, self, clock=self.clock, audio_opener=self._audio_opener(profile),
                    locate=self._locator(lc, profile), health_interval=lc.health_interval, pin=lc.pin)
        self.lines[lc.id] = line
        self.supervisor.spawn(line.run(), f"line-{lc.id}")

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            await session.line.hangup("gateway_shutdown")
        for leg in list(self.transfers.legs.values() if self.transfers is not None else ()):
            await leg.line.hangup("gateway_shutdown")
        await self.supervisor.shutdown()
        if self.web is not None:
            self.web.stop()
        if self.mqtt is not None:
            await self.mqtt.stop(final=[(self.topics.status, encode({"online": False}), True)])
        if self.broker is not None:
            await self.broker.stop()
        if self.store is not None:
            self.store.close()
        self.audit.close()
        (self.cfg.data_dir / STATE_FILE).unlink(missing_ok=True)

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    def _write_state_file(self) -> None:
        state = {"pid": os.getpid(), "gateway_id": self.cfg.gateway_id, "mqtt_host": self.mqtt.host,
                 "mqtt_port": self.mqtt.port, "ws_url": self.ws_url, "dashboard": self.web.url if self.web else None,
                 "started": self.started, "config": str(self.cfg.source)}
        (self.cfg.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    async def _prune_recordings(self) -> None:
        """At start and every hour: the retention policy, never touching a recording being written."""
        from gateway.media.retention import prune
        cfg = self.cfg
        max_bytes = int(cfg.recording_max_mb * 1_000_000) if cfg.recording_max_mb else None
        while True:
            in_use = {s.recording_path for s in self.sessions.values() if s.recording_path is not None}
            removed = await asyncio.to_thread(prune, cfg.data_dir / "recordings", now=self.clock.time(),
                                              keep_days=cfg.recording_keep_days, max_bytes=max_bytes, in_use=in_use)
            if removed:
                log.info("recording retention removed %d recording(s), oldest %s", len(removed), removed[0].name)
                now = self.clock.time()
                for path in removed:
                    self.store.recording_removed(str(path), now)
            await self.clock.sleep(RETENTION_INTERVAL)

    # --- flow files: hot reload ------------------------------------------------------------------------
    def _flow_dirs(self) -> list[Path]:
        """Where flows live: each line's (and SMS flow's) folder, and [flows] dirs."""
        dirs = [lc.flow.parent for lc in self.cfg.lines]
        dirs += [lc.sms_flow.parent for lc in self.cfg.lines if lc.sms_flow is not None]
        return dirs + list(self.cfg.flow_dirs)

    async def _watch_flows(self) -> None:
        """Every FLOW_CHECK_INTERVAL: re-read the flow files. A valid new version serves the next calls (a
        call in progress keeps the version it started with); an invalid one is logged and published, and
        the last valid version keeps serving."""
        while True:
            await self.clock.sleep(FLOW_CHECK_INTERVAL)
            changed = await asyncio.to_thread(self.library.refresh)
            if changed:
                self._flows_changed(changed)

    def _flows_changed(self, changed) -> None:
        for entry in changed:
            if entry.valid:
                log.info("flow %s: new version loaded; it serves the next calls", entry.path)
            else:
                serving = "the last valid version keeps serving" if entry.flow is not None else "nothing serves"
                log.error("flow %s: new version rejected, %s: %s", entry.path, serving,
                          "; ".join(str(i) for i in entry.errors[:5]))
        paths = {entry.path for entry in changed}
        touched = []
        for lc in self.cfg.lines:
            main, sms = self.library.file(lc.flow), self.library.file(lc.sms_flow) if lc.sms_flow else None
            if not any(e is not None and e.path in paths for e in (main, sms)):
                continue
            touched.append(lc)
            if main is not None and main.flow is not None and lc.id in self.flows:
                self.flows[lc.id] = main.flow
            if sms is not None and sms.flow is not None and lc.id in self.services.sms_flows:
                self.services.sms_flows[lc.id] = sms.flow
            if lc.id not in self.lines and main is not None and main.flow is not None:
                log.info("line %s: its flow is valid now; starting it", lc.id)
                self.line_errors.pop(lc.id, None)
                self._start_line(lc)
        self._publish_flows(touched)

    def _publish_flows(self, lines) -> None:
        """Retained `…/flows/<line>` for each of `lines`, and `…/flows` for the whole library."""
        for lc in lines:
            entry = self.library.file(lc.flow)
            view = {"line": lc.id, "file": str(lc.flow), "valid": False, "errors": ["not found"], "serving": None}
            if entry is not None:
                view = {"line": lc.id, **entry.status(), "checked_at": entry.checked_at}
            if lc.sms_flow is not None and (sms := self.library.file(lc.sms_flow)) is not None:
                view["sms_flow"] = sms.status()
            self.publisher.flow_status(lc.id, view)
        self.publisher.flow_status(None, {"dirs": [str(d) for d in self.library.dirs],
                                          "files": [e.status() for e in self.library.files.values()]})

    def _close_dangling_records(self, skip: set[str] = frozenset()) -> None:
        """Contacts that were live when the daemon died: repair their recordings, finish a voicemail being
        recorded (the only files a crash can leave unfinished) and mark them ended; finished contacts and
        recordings are not touched, nor the callbacks in `skip` (taken up again)."""
        for rec in self.store.list(limit=1000):
            if rec.get("ended_at") is None and rec["contact_id"] not in skip:
                rec_path = rec.get("recording_path")
                seconds = None
                if rec_path and Path(rec_path).exists():
                    try:
                        seconds = CallRecorder.repair(Path(rec_path))
                        seconds = self._settle_recording_mode(rec, Path(rec_path), seconds)
                    except Exception as exc:
                        log.warning("recording %s could not be repaired: %s", rec_path, exc)
                self.store.upsert(rec["contact_id"], ended_at=self.clock.time(), disconnect_reason="gateway_restart",
                                  recording_seconds=seconds)
            if rec.get("voicemail_status") == "recording" and rec.get("voicemail_path"):
                # an ended contact too: a shutdown can end the call before the message's outcome is stored
                self._finish_voicemail(rec["contact_id"], Path(rec["voicemail_path"]))

    def _settle_recording_mode(self, rec: dict, path: Path, seconds: float) -> float | None:
        """A call is recorded in stereo until it ends: give a recording cut short by a crash the mode its
        record asks for (mono: mixed down; off: deleted)."""
        mode = rec.get("recording_mode")
        if mode == "off":
            path.unlink(missing_ok=True)
            self.store.upsert(rec["contact_id"], recording_path=None)
            return None
        if mode == "mono" and wav_channels(path) == 2:
            downmix_to_mono(path)
        return seconds

    def _finish_interrupted_downmixes(self) -> None:
        """A mono mix-down the daemon died in: the stereo original is intact; mix it down again."""
        for tmp in (self.cfg.data_dir / "recordings").rglob("*.mono-tmp"):
            tmp.unlink(missing_ok=True)
            original = tmp.with_name(tmp.name.removesuffix(".mono-tmp"))
            try:
                if original.exists() and wav_channels(original) == 2:
                    downmix_to_mono(original)
            except Exception as exc:
                log.warning("recording %s could not be mixed down to mono: %s", original, exc)

    def _finish_voicemail(self, contact_id: str, path: Path) -> None:
        """A message the crash cut short: keep it trimmed (or discard it without speech), as a normal end would."""
        try:
            result = recover_voicemail(path)
        except Exception as exc:
            log.warning("voicemail %s could not be finished: %s", path, exc)
            self.store.upsert(contact_id, voicemail_status="error")
            return
        log.info("contact %s: voicemail finished after a restart: %s", contact_id, result.describe())
        self.store.upsert(contact_id, voicemail_path=str(result.path) if result.path else None,
                          voicemail_seconds=round(result.seconds, 3),
                          voicemail_speech_seconds=round(result.speech_seconds, 3), voicemail_status=result.status)

    # --- Line listener ----------------------------------------------------------------------------------
    def line_changed(self, line: Line) -> None:
        ident = line.identity
        self.publisher.line_changed({"line": line.id, "state": line.state.value, "profile": line.profile.id,
                                     "call_id": line.call.call_id if line.call and not line.call.ended else None,
                                     "error": line.error, "since": line.since, "at_port": line.at_port,
                                     "audio_port": line.audio_port, "model": ident.get("model"),
                                     "firmware": ident.get("firmware"), "imei": ident.get("imei"),
                                     "health": line.health.as_dict()})

    def call_progress(self, line: Line, call: Call, stage: str) -> None:
        log.info("line %s: call %s to %s: %s", line.id, call.call_id, call.caller, stage)
        leg = self.transfers.leg(line.id) if self.transfers is not None else None
        if isinstance(leg, AgentLeg):
            leg.progress(stage)

    def incoming_call(self, line: Line, call: Call) -> None:
        lc = next(lc for lc in self.cfg.lines if lc.id == line.id)
        session = ContactSession(line, call, flow=self.flows[line.id], prompts=self.prompts, center=self.center,
                                 store=self.store, recording_dir=(self.cfg.data_dir / "recordings") if self.cfg.recording else None,
                                 system_number=lc.number, clock=self.clock, recording_mode=self.cfg.recording_mode,
                                 queue_recording={q.id: q.recording for q in self.cfg.queues},
                                 voicemail_dir=self.cfg.data_dir / "voicemail", hold_music=self._hold_music,
                                 services=self.flow_services, library=self.library.current)
        session.transfers = self.transfers
        session.callbacks = self.callbacks
        self.sessions[call.call_id] = session
        log.info("line %s: incoming call %s from %s", line.id, call.call_id, call.caller or "unknown")
        task = self.supervisor.spawn(session.run(), f"contact-{call.call_id}")
        task.add_done_callback(lambda _t, cid=call.call_id: self.sessions.pop(cid, None))

    def call_ended(self, line: Line, call: Call) -> None:
        session = self.sessions.get(call.call_id)
        log.info("line %s: call %s ended (%s)", line.id, call.call_id, call.end_reason)
        if session is not None:
            session.ended(call.end_reason or "ended")
        elif (leg := self.transfers.leg(line.id)) is not None:
            leg.line_call_ended(call)

    def dtmf(self, line: Line, call: Call, digit: str) -> None:
        session = self.sessions.get(call.call_id)
        if session is not None:
            session.dtmf(digit)

    def audio_in(self, line: Line, call: Call, frame: bytes) -> None:
        session = self.sessions.get(call.call_id) or self.services.probes.get(line.id) or self.transfers.leg(line.id)
        if session is not None:
            session.audio_in(frame)

    # --- modem plumbing ---------------------------------------------------------------------------------
    def _audio_opener(self, profile):
        if profile.audio.transport != "sounddevice":
            return None

        async def open_card(device: str):
            from gateway.transport.sound_card import open_sound_card
            return await open_sound_card(device, sample_rate=profile.audio.sample_rate,
                                         frame_ms=profile.audio.frame_ms)
        return open_card

    def _locator(self, lc, profile):
        """Find this line's modem again after USB re-enumeration: same IMEI or USB serial, any /dev name."""
        async def locate(identity: dict[str, str]):
            from gateway.modem.relocate import relocate
            busy = {p for other in self.lines.values() if other.id != lc.id for p in (other.at_port, other.audio_port)}
            return await relocate(identity, profile, busy=busy)
        return locate

    def _hold_music(self, queue_id: str | None) -> list[bytes] | None:
        """Looped hold music for a queue: its own file, else the gateway's, else None (the chime).
        The file goes through the prompt cache, so an edited file is picked up by the next caller."""
        queue = next((q for q in self.cfg.queues if q.id == queue_id), None)
        path = (queue.hold_music if queue is not None else None) or self.cfg.hold_music
        if path is None:
            return None
        try:
            samples = self.prompts.file(path)
        except WavError as exc:
            log.warning("hold music cannot be played, using the chime: %s", exc)
            return None
        cached = self._hold_frames.get(path)
        if cached is None or cached[0] is not samples:
            cached = self._hold_frames[path] = (samples, pcm_to_frames(samples))
        return cached[1]

    def sms_received(self, line: Line, message) -> None:
        self.services.sms_received(line, message)

    # --- Center and agents ------------------------------------------------------------------------------
    def _on_center_event(self, event: object) -> None:
        if isinstance(event, AfterContactWorkEnded):
            self.store.upsert(event.contact_id, after_contact_work_end_at=self.clock.time())
        elif isinstance(event, ContactConnected):
            session = self._session(event.contact_id)
            if session is not None:
                session.bridge(self._relay(event.contact_id, event.agent_id), event.agent_id)
            elif not self.agent_calls.connected(event.contact_id, event.agent_id):
                self.callbacks.connected(event.contact_id, event.agent_id)   # an accepted callback: dial it

    def _session(self, contact_id: str) -> ContactSession | None:
        """The call whose contact this is now (after an agent's transfer it has another id than its call)."""
        session = self.sessions.get(contact_id)
        if session is not None and session.contact_id == contact_id:
            return session
        return next((s for s in self.sessions.values() if s.contact_id == contact_id), None)

    def _relay(self, contact_id: str, agent_id: str) -> AudioRelay:
        return AudioRelay(self.mqtt, self.topics, contact_id, agent_id, frame_ms=self.cfg.mqtt.audio_frame_ms)

    def _tell_agent(self, agent_id: str, message: dict) -> None:
        """Progress of a call the agent placed or a callback it took (…/agent/<id>/call)."""
        self.mqtt.publish(self.topics.agent_call(agent_id), encode(message), qos=1)

    def _agent_recording(self, contact_id: str, pause: bool) -> str | None:
        """An agent's pause_recording / resume_recording: the recording's state, None if the call is gone."""
        session = self._session(contact_id)
        if session is None:
            return None
        return session.pause_recording() if pause else session.resume_recording()

    def _agent_hung_up(self, agent_id: str, contact_id: str) -> None:
        session = self._session(contact_id)
        if session is None:
            if not self.agent_calls.hangup(contact_id, "agent_hung_up"):
                self.center.contact_ended(contact_id, "agent_hung_up")
            return
        self.supervisor.spawn(session.line.hangup("agent_hung_up"), f"hangup-{contact_id}")
