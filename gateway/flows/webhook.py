"""Flow webhooks: Amazon Connect's `InvokeLambdaFunction` re-read as an HTTP POST to a local URL.

The function named in the flow (a Lambda ARN, a bare function name, or an http(s) URL) is looked up
in the configured webhooks; the contact's data goes out in the shape a Lambda receives
(`{"Name": "ContactFlowEvent", "Details": {"ContactData": ..., "Parameters": ...}}`), and the
reply, a JSON object, becomes `$.External`. Everything is bounded by the action's time limit (at
most 8 s, as in Connect), including retries of throttled or unavailable endpoints.

The HTTP transport is handed in (`post`), so this module never opens a socket itself.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.clock import SYSTEM_CLOCK, Clock

MAX_TIME_LIMIT = 8.0
DEFAULT_TIME_LIMIT = 3.0   # Connect's default InvocationTimeLimitSeconds
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 3
RETRY_PAUSE = 0.2          # seconds between attempts, if the deadline leaves room


class WebhookError(RuntimeError):
    """The webhook failed; the message says which one and why (the flow takes its Error branch)."""


class Reply(Protocol):
    status: int
    body: bytes


Post = Callable[..., Awaitable[Reply]]  # post(url, body, *, timeout) -> Reply; raises on transport failure


def function_name(ref: str) -> str:
    """`arn:aws:lambda:us-east-1:123:function:lookup:PROD` -> `lookup`; other refs unchanged."""
    if ref.startswith("arn:") and ":function:" in ref:
        return ref.split(":function:", 1)[1].split(":", 1)[0]
    return ref


class Webhooks:
    def __init__(self, targets: dict[str, str], post: Post | None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.targets = targets if isinstance(targets, dict) else dict(targets)  # kept as given: a rehearsal
        # passes a mapping that answers for every name
        self._post = post
        self._clock = clock

    def url_for(self, ref: str) -> str | None:
        """The URL behind a flow's function reference, or None if no webhook is configured for it."""
        if ref.startswith(("http://", "https://")):
            return ref
        return self.targets.get(function_name(ref))

    async def invoke(self, ref: str, contact_data: dict, parameters: dict[str, str], *,
                     time_limit: float = DEFAULT_TIME_LIMIT, response_type: str = "STRING_MAP") -> dict[str, Any]:
        """Call the webhook and return its reply object, as `$.External` will hold it."""
        url = self.url_for(ref)
        name = function_name(ref)
        if url is None:
            known = ", ".join(sorted(self.targets)) or "none configured"
            raise WebhookError(f"no webhook configured for {name!r} (webhooks: {known})")
        if self._post is None:
            raise WebhookError(f"webhook {name!r}: no HTTP client available")
        limit = min(max(float(time_limit), 0.1), MAX_TIME_LIMIT)
        event = {"Name": "ContactFlowEvent", "Details": {"ContactData": contact_data, "Parameters": parameters}}
        deadline = self._clock.monotonic() + limit
        last = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            left = deadline - self._clock.monotonic()
            if left <= 0:
                break
            try:
                reply = await self._post(url, event, timeout=left)
            except Exception as exc:  # the transport's errors name the URL and the cause
                if self._clock.monotonic() >= deadline - 0.01:
                    raise WebhookError(f"webhook {name!r} ({url}): no reply within {limit:g} s") from None
                raise WebhookError(f"webhook {name!r}: {exc}") from None
            if reply.status in RETRY_STATUSES and attempt < MAX_ATTEMPTS:
                last = f"HTTP {reply.status}"
                if deadline - self._clock.monotonic() > RETRY_PAUSE:
                    await self._clock.sleep(RETRY_PAUSE)
                continue
            return _decode(name, url, reply, response_type)
        raise WebhookError(f"webhook {name!r} ({url}): no usable reply within {limit:g} s ({last or 'time limit'})")


def _decode(name: str, url: str, reply: Reply, response_type: str) -> dict[str, Any]:
    where = f"webhook {name!r} ({url})"
    if not 200 <= reply.status < 300:
        excerpt = reply.body[:120].decode(errors="replace").strip()
        raise WebhookError(f"{where} replied HTTP {reply.status}" + (f": {excerpt}" if excerpt else ""))
    if not reply.body.strip():
        return {}
    try:
        data = json.loads(reply.body)
    except UnicodeDecodeError:
        raise WebhookError(f"{where}: reply is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise WebhookError(f"{where}: reply is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise WebhookError(f"{where}: reply must be a JSON object, got {type(data).__name__}")
    if response_type == "JSON":
        return data
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            raise WebhookError(f"{where}: STRING_MAP reply has a nested value at $.{key} "
                               "(set ResponseValidation.ResponseType to JSON to accept it)")
        flat[key] = "" if value is None else (json.dumps(value) if isinstance(value, bool) else str(value))
    return flat
