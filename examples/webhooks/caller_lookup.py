"""An example webhook for webhook-greeting.json: tells the gateway who is calling.

callgate POSTs the contact's data in the shape an Amazon Connect Lambda receives
({"Details": {"ContactData": {...}, "Parameters": {"number": "+4930123456", ...}}}); this replies
{"found": "true", "name": ..., "customer_id": ..., "vip": ...} for a number in callers.json, else
{"found": "false"}. The flow reads the reply as $.External.found, $.External.name, ...

    python3 examples/webhooks/caller_lookup.py [--port 8099] [--callers examples/webhooks/callers.json]

Only the standard library: copy it anywhere, or replace it with a lookup in your own address book.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 64 * 1024


def reply_for(event: object, callers: dict) -> dict:
    """The reply to one webhook call: the caller's record, or found "false"."""
    details = event.get("Details", {}) if isinstance(event, dict) else {}
    number = (details.get("Parameters") or {}).get("number") or \
        ((details.get("ContactData") or {}).get("CustomerEndpoint") or {}).get("Address", "")
    record = callers.get(number)
    if not isinstance(record, dict):
        return {"found": "false"}
    return {"found": "true", **{k: str(v) for k, v in record.items()}}


def make_handler(callers: dict):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self.send_error(400, "expected a JSON body")
                return
            try:
                event = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "body is not JSON")
                return
            body = json.dumps(reply_for(event, callers)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            print(f"{self.address_string()} {fmt % args}", file=sys.stderr)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    parser.add_argument("--callers", default=str(Path(__file__).with_name("callers.json")),
                        help="JSON object: phone number (E.164) -> fields to reply with")
    args = parser.parse_args(argv)
    callers = json.loads(Path(args.callers).read_text(encoding="utf-8"))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(callers))
    print(f"caller lookup on http://{args.host}:{server.server_address[1]}/caller", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
