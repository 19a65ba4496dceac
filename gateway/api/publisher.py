"""Retained state on MQTT: gateway status, lines, queues, agents, offers and real-time metrics, from Center
events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from gateway.api.topics import Topics
from gateway.center.events import AgentChanged, ContactOffered, OfferWithdrawn, QueueChanged
from gateway.center.router import Center
from gateway.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

QUEUE_REFRESH = 5.0   # republish queues with waiting contacts so their wait times stay fresh
METRICS = "metrics"   # …/metrics: Center.realtime_metrics(), docs/mqtt-api.md

Publish = Callable[..., bool]


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class StatePublisher:
    def __init__(self, publish: Publish, topics: Topics, center: Center, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._publish = publish
        self._topics = topics
        self._center = center
        self._clock = clock
        self._lines: dict[str, dict] = {}
        self._flows: dict[str, dict] = {}   # topic -> the flow status retained there
        self._counts: object = None          # the metrics last published, less their wait times
        self._metrics_due = False            # a flush of the metrics is scheduled on the event loop
        self.status: dict = {}
        center.subscribe(self.on_event)

    def on_event(self, event: object) -> None:
        t, c = self._topics, self._center
        if isinstance(event, AgentChanged):
            self._retain(t.agent_state(event.agent_id), c.agent_view(event.agent_id))
        elif isinstance(event, QueueChanged):
            self._retain(t.queue(event.queue_id), c.queue_view(event.queue_id))
        elif isinstance(event, ContactOffered):
            offer = c.offer_view(event.agent_id)
            if offer is not None:
                self._publish(t.agent_offer(event.agent_id), encode(offer), qos=1)
            self._retain(t.agent_state(event.agent_id), c.agent_view(event.agent_id))
        elif isinstance(event, OfferWithdrawn):
            self._retain(t.agent_state(event.agent_id), c.agent_view(event.agent_id))
        if isinstance(event, (AgentChanged, QueueChanged)):
            self._metrics_changed()

    def _metrics_changed(self) -> None:
        """Publish the metrics once the events of this command or tick are all in (on the running event
        loop's next turn; at once when there is no loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.publish_metrics(only_if_changed=True)
            return
        if not self._metrics_due:
            self._metrics_due = True
            loop.call_soon(self._flush_metrics)

    def _flush_metrics(self) -> None:
        self._metrics_due = False
        try:
            self.publish_metrics(only_if_changed=True)
        except Exception:
            log.exception("publishing the real-time metrics failed")

    def publish_metrics(self, *, only_if_changed: bool = False) -> None:
        """Retain the Center's real-time metrics; with only_if_changed, only when a count differs from
        the last ones published (wait times alone change all the time: refresh_queues sends those)."""
        metrics = self._center.realtime_metrics()
        counts = _without_waits(metrics)
        if only_if_changed and counts == self._counts:
            return
        self._counts = counts
        self._retain(f"{self._topics.base}/{METRICS}", {"at": self._clock.time(), **metrics})

    def line_changed(self, view: dict) -> None:
        """Publish a line's state; an unchanged view (the same signal reported again) is not resent."""
        if self._lines.get(view["line"]) == view:
            return
        self._lines[view["line"]] = view
        self._retain(self._topics.line(view["line"]), view)

    def flow_status(self, line_id: str | None, view: dict) -> None:
        """A line's flow file (or, line None, the whole flow library): valid or rejected, and what serves."""
        topic = self._topics.flow(line_id) if line_id is not None else self._topics.flow_library
        self._flows[topic] = view
        self._retain(topic, view)

    def set_status(self, status: dict) -> None:
        self.status = status
        self._retain(self._topics.status, status)

    def publish_all(self) -> None:
        """Everything retained, e.g. after a (re)connect to the broker."""
        if self.status:
            self._retain(self._topics.status, self.status)
        for view in self._lines.values():
            self._retain(self._topics.line(view["line"]), view)
        for topic, view in self._flows.items():
            self._retain(topic, view)
        for queue_id in self._center.queue_ids:
            self._retain(self._topics.queue(queue_id), self._center.queue_view(queue_id))
        for agent_id in self._center.agent_ids:
            self._retain(self._topics.agent_state(agent_id), self._center.agent_view(agent_id))
        self.publish_metrics()

    async def refresh_queues(self) -> None:
        while True:
            await self._clock.sleep(QUEUE_REFRESH)
            waiting = False
            for queue_id in self._center.queue_ids:
                view = self._center.queue_view(queue_id)
                if view.get("depth"):
                    waiting = True
                    self._retain(self._topics.queue(queue_id), view)
            if waiting:
                self.publish_metrics()

    def _retain(self, topic: str, view: dict) -> None:
        self._publish(topic, encode(view), qos=1, retain=True)


def _without_waits(metrics: dict) -> list:
    return [{k: v for k, v in counts.items() if k != "oldest_wait"}
            for counts in (metrics["total"], *metrics["queues"].values())]
