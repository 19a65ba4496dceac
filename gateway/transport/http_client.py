"""HTTP POST of a JSON body with a hard time limit, for flow webhooks.

The standard library's client runs in a worker thread so the asyncio loop never blocks; the whole
exchange (connect, send, read the reply) is bounded by one deadline. Replies are capped in size so
a misbehaving endpoint cannot fill the board's memory.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

MAX_REPLY_BYTES = 256 * 1024
USER_AGENT = "callgate-webhook/1"


class HttpError(RuntimeError):
    """The request failed; the message names the URL and what went wrong."""


@dataclass
class HttpReply:
    status: int
    body: bytes
    content_type: str


async def post_json(url: str, body: object, *, timeout: float, headers: dict[str, str] | None = None) -> HttpReply:
    """POST `body` as JSON to `url`; any HTTP status comes back as a reply, transport failures and the
    time limit raise HttpError."""
    if not url.startswith(("http://", "https://")):
        raise HttpError(f"{url}: only http:// and https:// URLs can be called")
    data = json.dumps(body, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})})
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(_exchange, request, timeout)
    except TimeoutError:
        raise HttpError(f"{url}: no reply within {timeout:g} s") from None


def _exchange(request: urllib.request.Request, timeout: float) -> HttpReply:
    url = request.full_url
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _read(url, response.status, response, response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        with exc:
            return _read(url, exc.code, exc, exc.headers.get("Content-Type", "") if exc.headers else "")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HttpError(f"{url}: {reason}") from None


def _read(url: str, status: int, stream, content_type: str) -> HttpReply:
    try:
        body = stream.read(MAX_REPLY_BYTES + 1)
    except (OSError, TimeoutError) as exc:
        raise HttpError(f"{url}: reply cut off: {exc}") from None
    if len(body) > MAX_REPLY_BYTES:
        raise HttpError(f"{url}: reply larger than {MAX_REPLY_BYTES // 1024} KiB")
    return HttpReply(status, body, content_type)
