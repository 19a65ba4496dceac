"""HTTP server for the agent dashboard: the static folder (read-only), GET /config.json, and the
pictures of the lines' flows (GET /flows/index.json, /flows/<line>.svg; see flow_pictures.py).

The page itself talks to the broker over MQTT/WebSockets; this server only hands out files and
tells the page which broker and gateway id to use. A ws_url whose host is a wildcard address
(0.0.0.0, ::) is rewritten per request to the host name the browser used to reach this server.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import AF_INET6
from urllib.parse import unquote, urlsplit, urlunsplit

from gateway.flows.model import Flow
from gateway.web.flow_pictures import FlowPictures

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_MQTT = "vendor/mqtt.min.js"
VENDOR_HINT = ("mqtt.js is missing from gateway/web/static/vendor/: run deploy/web-vendor.sh "
               "(it fetches mqtt@5 with npm) and reload this page.")
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05     # how quickly serve_forever notices stop()

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".wav": "audio/wav",
    ".txt": "text/plain; charset=utf-8",
}
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, handler, *, ipv6: bool) -> None:
        if ipv6:
            self.address_family = AF_INET6
        super().__init__(address, handler)


class DashboardServer:
    """Serves gateway/web/static and /config.json on a daemon thread."""

    def __init__(self, host: str, port: int, *, ws_url: str, gateway_id: str,
                 static_dir: Path = STATIC_DIR, certfile: str | None = None,
                 keyfile: str | None = None, flows: Callable[[], Mapping[str, Flow]] | None = None,
                 flow_paths: Mapping[str, str | Path] | None = None) -> None:
        """flows: a callable returning the running daemon's flows by line id; flow_paths: line id ->
        flow file, drawn for lines that flows() does not have."""
        self.host = host
        self.port = port
        self.ws_url = ws_url
        self.gateway_id = gateway_id
        self.static_dir = Path(static_dir).resolve()
        self._certfile = certfile
        self._keyfile = keyfile
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.flow_pictures = FlowPictures(flows, flow_paths)

    @property
    def url(self) -> str:
        """Base URL of the page, e.g. http://127.0.0.1:8080/ (valid after start())."""
        if self._httpd is None:
            raise RuntimeError("DashboardServer.url is known only after start()")
        host = self.host if self.host not in WILDCARD_HOSTS else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._certfile else "http"
        return f"{scheme}://{host}:{self._httpd.server_address[1]}/"

    @property
    def tls(self) -> bool:
        return self._certfile is not None

    def start(self) -> None:
        if self._httpd is not None:
            return
        httpd = _Server((self.host, self.port), self._handler_class(), ipv6=":" in self.host)
        if self._certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._certfile, self._keyfile)
            # Handshake in the request thread, not in accept(), so one slow client blocks nobody.
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True,
                                               do_handshake_on_connect=False)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, args=(POLL_INTERVAL,),
                                        name="dashboard-http", daemon=True)
        self._thread.start()
        if not (self.tls or _is_loopback(self.host)):
            log.warning("dashboard served over plain HTTP on %s: browsers on other machines get no "
                        "microphone or audio worklets there (not a secure context); use a TLS "
                        "certificate", self.host)
        if not (self.static_dir / VENDOR_MQTT).is_file():
            log.warning(VENDOR_HINT)
        log.info("agent dashboard on %s (broker %s, gateway %s)", self.url, self.ws_url,
                 self.gateway_id)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def config_for(self, request_host: str | None) -> dict:
        """The /config.json body; a wildcard broker host becomes the host the browser asked for."""
        ws_url = self.ws_url
        parts = urlsplit(ws_url)
        if request_host and parts.hostname in WILDCARD_HOSTS:
            name = urlsplit(f"//{request_host}").hostname or ""
            if name:
                name = f"[{name}]" if ":" in name else name
                netloc = f"{name}:{parts.port}" if parts.port else name
                ws_url = urlunsplit(parts._replace(netloc=netloc))
        return {"ws_url": ws_url, "gateway_id": self.gateway_id}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_DashboardHandler):
            dashboard = server

        return Handler


class _DashboardHandler(BaseHTTPRequestHandler):
    dashboard: DashboardServer
    server_version = "callgate-dashboard"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse_method(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET and HEAD only\n",
                   "text/plain; charset=utf-8", head=False, extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _serve(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/config.json":
            body = json.dumps(self.dashboard.config_for(self.headers.get("Host"))).encode()
            self._send(HTTPStatus.OK, body, "application/json", head=head)
            return
        if self.dashboard.flow_pictures.handles(path):
            status, body, mime, extra = self.dashboard.flow_pictures.respond(path)
            self._send(status, body, mime, head=head, extra=extra)
            return
        if path in ("", "/"):
            path = "/index.html"
        file = self._resolve(path)
        if file is None:
            if path.lstrip("/") == VENDOR_MQTT:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, (VENDOR_HINT + "\n").encode(),
                           "text/plain; charset=utf-8", head=head)
            else:
                self._send(HTTPStatus.NOT_FOUND, f"not found: {path}\n".encode(),
                           "text/plain; charset=utf-8", head=head)
            return
        try:
            body = file.read_bytes()
        except OSError:
            self._send(HTTPStatus.NOT_FOUND, f"not found: {path}\n".encode(),
                       "text/plain; charset=utf-8", head=head)
            return
        mime = MIME_TYPES.get(file.suffix.lower(), "application/octet-stream")
        self._send(HTTPStatus.OK, body, mime, head=head)

    def _resolve(self, path: str) -> Path | None:
        """The regular file under the static folder that path names, or None."""
        if "\x00" in path or "\\" in path:
            return None
        parts = [p for p in path.split("/") if p]
        if any(p.startswith(".") for p in parts):
            return None
        root = self.dashboard.static_dir
        try:
            file = root.joinpath(*parts).resolve()
        except (OSError, RuntimeError):
            return None
        if not file.is_relative_to(root) or not file.is_file():
            return None
        return file

    def _send(self, status: HTTPStatus, body: bytes, mime: str, *, head: bool,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gateway.web",
                                description="Serve the callgate agent dashboard.")
    p.add_argument("--ws", default="ws://127.0.0.1:9001/mqtt",
                   help="broker WebSocket URL the page connects to (default %(default)s)")
    p.add_argument("--gateway", default="callgate", help="gateway id (default %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port, 0 for any free one (default %(default)s)")
    p.add_argument("--cert", help="TLS certificate (PEM) to serve HTTPS")
    p.add_argument("--key", help="TLS private key (PEM), if not inside --cert")
    p.add_argument("--config", help="gateway config: also show the flow behind each of its lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    flow_paths = None
    if args.config:
        from gateway.config import ConfigError, load_config
        try:
            flow_paths = {lc.id: lc.flow for lc in load_config(args.config).lines}
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            return 2
    server = DashboardServer(args.host, args.port, ws_url=args.ws, gateway_id=args.gateway,
                             certfile=args.cert, keyfile=args.key, flow_paths=flow_paths)
    try:
        server.start()
    except OSError as exc:
        print(f"cannot serve the dashboard on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())   # before the URL line: a caller may stop us at once
    print(f"callgate agent dashboard: {server.url}  (broker {args.ws}, gateway {args.gateway})",
          flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
