"""Topic names of the MQTT API (docs/mqtt-api.md), in one place, and parsing of incoming topics."""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "callgate"


@dataclass(frozen=True)
class Topics:
    gateway_id: str

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.gateway_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def errors(self) -> str:
        return f"{self.base}/errors"

    def line(self, line_id: str) -> str:
        return f"{self.base}/line/{line_id}"

    def flow(self, line_id: str) -> str:
        return f"{self.base}/flows/{line_id}"

    @property
    def flow_library(self) -> str:
        return f"{self.base}/flows"

    def line_sms(self, line_id: str) -> str:
        return f"{self.base}/line/{line_id}/sms"

    @property
    def admin_cmd(self) -> str:
        return f"{self.base}/admin/cmd"

    def admin_reply(self, request_id: str) -> str:
        return f"{self.base}/admin/reply/{request_id}"

    def queue(self, queue_id: str) -> str:
        return f"{self.base}/queue/{queue_id}"

    def agent_state(self, agent_id: str) -> str:
        return f"{self.base}/agent/{agent_id}/state"

    def agent_offer(self, agent_id: str) -> str:
        return f"{self.base}/agent/{agent_id}/offer"

    def agent_cmd(self, agent_id: str) -> str:
        return f"{self.base}/agent/{agent_id}/cmd"

    def agent_reply(self, agent_id: str) -> str:
        return f"{self.base}/agent/{agent_id}/reply"

    def agent_call(self, agent_id: str) -> str:
        return f"{self.base}/agent/{agent_id}/call"

    def call_audio_out(self, call_id: str) -> str:
        return f"{self.base}/call/{call_id}/audio/out"

    def agent_audio(self, agent_id: str, call_id: str) -> str:
        return f"{self.base}/agent/{agent_id}/audio/{call_id}"

    @property
    def all_agent_cmds(self) -> str:
        return f"{self.base}/agent/+/cmd"

    def agent_of(self, topic: str) -> str | None:
        """The agent id in …/agent/<id>/…, or None."""
        parts = topic.split("/")
        base = self.base.split("/")
        if parts[: len(base)] != base or len(parts) < len(base) + 3 or parts[len(base)] != "agent":
            return None
        return parts[len(base) + 1]
