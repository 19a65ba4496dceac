"""Asking the running daemon to do something over its MQTT admin topic, and waiting for the answer
(`callgate line test`, `callgate sms send`). Progress messages are shown as they arrive."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Callable

from gateway.cli.status import _broker_of


class RemoteError(Exception):
    pass


def admin_request(cfg, op: str, fields: dict, *, timeout: float,
                  on_progress: Callable[[str], None] = lambda s: None) -> dict:
    """The daemon's final reply ({"ok": ..., "result"|"error": ...}); RemoteError when none comes."""
    import paho.mqtt.client as paho
    host, port = _broker_of(cfg)
    request_id = uuid.uuid4().hex[:16]
    base = f"callgate/{cfg.gateway_id}"
    reply_topic = f"{base}/admin/reply/{request_id}"
    inbox: queue.Queue = queue.Queue()

    def on_connect(client, userdata, flags, rc, props):
        if rc.is_failure:
            inbox.put(("error", f"MQTT broker {host}:{port} refused the connection: {rc}"))
            return
        client.subscribe(reply_topic, 1)

    def on_subscribe(client, userdata, mid, rcs, props):
        client.publish(f"{base}/admin/cmd", json.dumps({"id": request_id, "op": op, **fields}), qos=1)

    def on_message(client, userdata, msg):
        try:
            inbox.put(("reply", json.loads(msg.payload)))
        except ValueError:
            pass

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if cfg.mqtt.username:
        client.username_pw_set(cfg.mqtt.username, cfg.mqtt.password)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise RemoteError(f"cannot reach MQTT broker {host}:{port}: {exc} (is the daemon running?)") from None
    client.loop_start()
    try:
        while True:
            try:
                kind, item = inbox.get(timeout=timeout)
            except queue.Empty:
                raise RemoteError(f"no answer from gateway {cfg.gateway_id!r} within {timeout:.0f} s "
                                  f"(is `callgate run` running?)") from None
            if kind == "error":
                raise RemoteError(item)
            if "progress" in item:
                on_progress(item["progress"])
                continue
            return item
    finally:
        client.loop_stop()
        client.disconnect()
