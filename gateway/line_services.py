"""What the daemon does with a line besides its calls: received SMS (an MQTT event, a contact record, and
the line's sms_flow with its reply), and the technician's operations on the admin topic (`callgate line
test`, `callgate sms send`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from gateway.api.admin import AdminError, Operation
from gateway.api.publisher import encode
from gateway.api.topics import Topics
from gateway.center.records import ContactStore
from gateway.clock import Clock
from gateway.modem.line import Line, LineState

log = logging.getLogger(__name__)


class LineServices:
    def __init__(self, lines: dict[str, Line], numbers: dict[str, str], store: ContactStore, prompts, clock: Clock,
                 publish: Callable[[str, bytes], object], topics: Topics, spawn: Callable, *,
                 flow_services=None) -> None:
        self._lines, self._numbers, self._store, self._prompts = lines, numbers, store, prompts
        self._flow_services = flow_services   # hours, webhooks: what an sms_flow asks besides the message
        self._clock, self._publish, self._topics, self._spawn = clock, publish, topics, spawn
        self.sms_flows: dict = {}       # line id -> flow run for each received SMS
        self.probes: dict = {}          # line id -> LineTest running on it (it takes the call's audio)

    def operations(self) -> dict[str, Operation]:
        return {
            "line_test": Operation({"line": str, "number": str}, self.line_test, (("seconds", (int, float)),)),
            "sms_send": Operation({"line": str, "number": str, "text": str}, self.sms_send),
        }

    # --- received SMS ---------------------------------------------------------------------------------
    def sms_received(self, line: Line, message) -> None:
        """An event on …/line/<id>/sms, an INBOUND contact record with channel SMS, and the sms_flow."""
        contact_id = f"sms-{uuid.uuid4().hex[:12]}"
        event = {"contact_id": contact_id, "line": line.id, "from": message.sender, "text": message.text,
                 "timestamp": message.timestamp.isoformat(), "parts": message.parts, "missing": list(message.missing)}
        log.info("line %s: SMS from %s (%d part(s))", line.id, message.sender, message.parts)
        now = self._clock.time()
        self._store.upsert(contact_id, line_id=line.id, caller=message.sender, initiation_method="INBOUND",
                           initiated_at=now, ended_at=now, disconnect_reason="sms_received",
                           attributes={"channel": "SMS", "text": message.text, "parts": message.parts})
        self._publish(self._topics.line_sms(line.id), encode(event))
        if line.id in self.sms_flows:
            self._spawn(self._run_sms_flow(line, contact_id, message), f"sms-flow-{contact_id}")

    async def _run_sms_flow(self, line: Line, contact_id: str, message) -> None:
        from gateway.flows.interpreter import run_flow
        from gateway.sms_contact import SmsContact
        contact = SmsContact(contact_id, message.sender, message.text, self._numbers.get(line.id, ""),
                             services=self._flow_services, send=line.send_sms)
        result = await run_flow(self.sms_flows[line.id], contact, self._prompts, clock=self._clock)
        reply, refs, error = contact.reply(), [], result.error
        if reply:
            try:
                refs = await line.send_sms(message.sender, reply)
            except Exception as exc:        # the record must say why the reply did not go
                error = f"reply not sent: {exc}"
                log.warning("line %s: SMS reply to %s failed: %s", line.id, message.sender, exc)
        self._store.upsert(contact_id, flow_path=result.path_records(),
                           attributes={"channel": "SMS", "text": message.text, "parts": message.parts,
                                       **contact.attributes, "reply": reply, "reply_references": refs,
                                       "flow_outcome": result.outcome, **({"flow_error": error} if error else {})})

    # --- technician operations (…/admin/cmd) ------------------------------------------------------------
    def _line_for(self, command: dict) -> Line:
        line = self._lines.get(command["line"])
        if line is None:
            known = ", ".join(sorted(self._lines)) or "none"
            raise AdminError("unknown_line", f"no running line {command['line']!r} (lines: {known})")
        return line

    async def line_test(self, command: dict, progress) -> dict:
        from gateway.modem.line_test import LineTest
        line = self._line_for(command)
        if line.state != LineState.IDLE:
            raise AdminError("line_busy", f"line {line.id} is {line.state.value}; try again when it is idle")
        test = LineTest(line, command["number"], seconds=float(command.get("seconds", 3.0)), clock=self._clock,
                        progress=progress)
        started = self._clock.time()
        self.probes[line.id] = test
        try:
            report = await test.run()
        except ValueError as exc:
            raise AdminError("bad_number", str(exc)) from None
        finally:
            self.probes.pop(line.id, None)
        call = test.call
        if call is not None:
            self._store.upsert(call.call_id, line_id=line.id, caller=call.caller, initiation_method="OUTBOUND",
                               initiated_at=started, ended_at=call.ended_at or self._clock.time(),
                               disconnect_reason=call.end_reason,
                               attributes={"purpose": "line_test", "verdict": report["verdict"]},
                               flow_path=[{"stage": s, "at": t} for s, t in call.progress])
        return report

    async def sms_send(self, command: dict, progress) -> dict:
        from gateway.modem.sms import SmsError
        from gateway.modem.sms_pdu import split_text
        line = self._line_for(command)
        try:
            encoding, parts = split_text(command["text"])
            progress(f"sending {len(parts)} part(s) ({encoding})")
            refs = await line.send_sms(command["number"], command["text"])
        except (SmsError, RuntimeError, ValueError) as exc:
            raise AdminError("sms_failed", str(exc)) from None
        now = self._clock.time()
        self._store.upsert(f"sms-{uuid.uuid4().hex[:12]}", line_id=line.id, caller=command["number"],
                           initiation_method="OUTBOUND", initiated_at=now, ended_at=now, disconnect_reason="sms_sent",
                           attributes={"channel": "SMS", "text": command["text"], "references": refs})
        return {"line": line.id, "number": command["number"], "parts": len(parts), "encoding": encoding,
                "references": refs}
