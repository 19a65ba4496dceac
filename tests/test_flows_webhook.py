"""Flow webhooks over real HTTP: a local server replies, is slow, fails, throttles or talks nonsense."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.flows.webhook import Webhooks, WebhookError, function_name
from gateway.transport.http_client import post_json

CONTACT = {"ContactId": "c-1", "CustomerEndpoint": {"Address": "+4930123456", "Type": "TELEPHONE_NUMBER"}}


class _Handler(BaseHTTPRequestHandler):
    seen: list = []
    throttled = 0

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append((self.path, body))
        path = self.path
        if path == "/slow":
            time.sleep(1.5)
        if path == "/throttle" and _Handler.throttled < 1:
            _Handler.throttled += 1
            return self._reply(429, b"slow down")
        replies = {
            "/lookup": (200, json.dumps({"name": "Ada", "vip": True, "visits": 3, "note": None}).encode()),
            "/throttle": (200, b'{"ok": "yes"}'),
            "/slow": (200, b"{}"),
            "/boom": (500, b"database down"),
            "/notjson": (200, b"<html>hi</html>"),
            "/nested": (200, b'{"customer": {"name": "Ada"}}'),
            "/array": (200, b"[1, 2]"),
            "/empty": (204, b""),
        }
        self._reply(*replies.get(path, (404, b"no such hook")))

    def _reply(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:     # the slow reply: the gateway gave up waiting, as it should
            pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _hooks(base: str) -> Webhooks:
    names = ("lookup", "slow", "boom", "notjson", "nested", "array", "throttle", "empty")
    return Webhooks({n: f"{base}/{n}" for n in names}, post_json)


def _invoke(hooks: Webhooks, ref: str, **kw):
    return asyncio.run(hooks.invoke(ref, CONTACT, {"mode": "full"}, **kw))


def test_reply_becomes_a_string_map_and_the_event_has_connects_shape(server):
    _Handler.seen.clear()
    reply = _invoke(_hooks(server), "arn:aws:lambda:us-east-1:123456789012:function:lookup")
    assert reply == {"name": "Ada", "vip": "true", "visits": "3", "note": ""}
    path, event = _Handler.seen[-1]
    assert path == "/lookup" and event["Name"] == "ContactFlowEvent"
    assert event["Details"]["ContactData"]["CustomerEndpoint"]["Address"] == "+4930123456"
    assert event["Details"]["Parameters"] == {"mode": "full"}


def test_json_response_type_keeps_nesting_and_string_map_refuses_it(server):
    hooks = _hooks(server)
    assert _invoke(hooks, "nested", response_type="JSON") == {"customer": {"name": "Ada"}}
    with pytest.raises(WebhookError, match=r"nested value at \$\.customer"):
        _invoke(hooks, "nested")


def test_slow_reply_past_the_time_limit_is_an_error_in_time(server):
    async def timed():
        started = time.monotonic()
        with pytest.raises(WebhookError, match="slow.*no reply within 0.4 s"):
            await _hooks(server).invoke("slow", CONTACT, {}, time_limit=0.4)
        return time.monotonic() - started
    assert asyncio.run(timed()) < 0.7


@pytest.mark.parametrize("ref,message", [
    ("boom", "replied HTTP 500: database down"),
    ("notjson", "reply is not JSON: Expecting value at line 1 column 1"),
    ("array", "reply must be a JSON object, got list"),
    ("unknown", "no webhook configured for 'unknown'"),
])
def test_failures_name_the_hook_and_the_cause(server, ref, message):
    with pytest.raises(WebhookError, match=message):
        _invoke(_hooks(server), ref)


def test_throttled_endpoint_is_retried_within_the_limit(server):
    _Handler.throttled = 0
    assert _invoke(_hooks(server), "throttle", time_limit=3) == {"ok": "yes"}
    assert _Handler.throttled == 1


def test_empty_reply_is_an_empty_map_and_time_limit_is_capped_at_8_seconds(server):
    assert _invoke(_hooks(server), "empty", time_limit=60) == {}
    assert function_name("arn:aws:lambda:eu-west-1:1:function:greet:PROD") == "greet"
    assert Webhooks({}, post_json).url_for("https://example.test/x") == "https://example.test/x"


def test_unreachable_endpoint_is_named():
    hooks = Webhooks({"gone": "http://127.0.0.1:9/hook"}, post_json)
    with pytest.raises(WebhookError, match=r"'gone'.*127\.0\.0\.1:9"):
        asyncio.run(hooks.invoke("gone", CONTACT, {}, time_limit=2))
