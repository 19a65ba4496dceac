"""The picture of the flow behind each line, for the dashboard: GET /flows/index.json lists the lines,
GET /flows/<line>.svg draws one with Graphviz. The flows come from the running daemon when it hands
them over, else from the flow files the config names; each drawing is kept until its flow changes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote

from gateway.flows.model import Flow
from gateway.flows.render import DOT_HINT, DotMissing, RenderError, read_drawable, render_svg
from gateway.flows.validate import FlowInvalid

PREFIX = "/flows/"
INDEX = PREFIX + "index.json"
SVG_MIME = "image/svg+xml"
TEXT_MIME = "text/plain; charset=utf-8"
# A drawn flow carries no script; if one is opened on its own, nothing in it may run or load.
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
MAX_ERRORS_SHOWN = 5

log = logging.getLogger(__name__)


class FlowPictures:
    """`loaded()` returns the daemon's flows by line id (the flows calls run now); `paths` maps line ids
    to flow files, used for lines `loaded()` does not have (or when there is no daemon)."""

    def __init__(self, loaded: Callable[[], Mapping[str, Flow]] | None = None,
                 paths: Mapping[str, str | Path] | None = None) -> None:
        self._loaded = loaded
        self._paths = {line: Path(p) for line, p in (paths or {}).items()}
        self._cache: dict[str, tuple[object, bytes]] = {}
        self._lock = threading.Lock()

    def handles(self, path: str) -> bool:
        return path == INDEX or (path.startswith(PREFIX) and path.endswith(".svg") and len(path) > len(PREFIX) + 4)

    def respond(self, path: str) -> tuple[HTTPStatus, bytes, str, dict[str, str]]:
        """(status, body, content type, extra headers) for a path that `handles` accepted."""
        if path == INDEX:
            return HTTPStatus.OK, json.dumps(self.index()).encode(), "application/json", {}
        return self.picture(path[len(PREFIX):-len(".svg")])

    def loaded(self) -> Mapping[str, Flow]:
        if self._loaded is None:
            return {}
        try:
            return dict(self._loaded())
        except Exception as exc:  # the daemon's side is out of reach: fall back to the config's files
            log.warning("the daemon's loaded flows are out of reach (%s); drawing the config's flow files", exc)
            return {}

    def index(self) -> dict:
        loaded = self.loaded()
        lines = list(self._paths) + [line for line in loaded if line not in self._paths]
        return {"lines": [{"line": line, "flow": self._flow_name(line, loaded),
                           "picture": f"flows/{quote(line, safe='')}.svg"} for line in lines]}

    def _flow_name(self, line: str, loaded: Mapping[str, Flow]) -> str:
        if line in self._paths:
            return self._paths[line].name
        return Path(loaded[line].source).name

    def picture(self, line: str) -> tuple[HTTPStatus, bytes, str, dict[str, str]]:
        flow = self.loaded().get(line)
        path = self._paths.get(line)
        if flow is None and path is None:
            return _text(HTTPStatus.NOT_FOUND, f"no line {line!r} with a flow on this gateway")
        try:
            if flow is not None:
                key: object = flow
                svg = self._cached(line, key) or render_svg(flow)
            else:
                stat = path.stat()
                key = (str(path), stat.st_mtime_ns, stat.st_size)
                svg = self._cached(line, key)
                if svg is None:
                    drawable = read_drawable(path)
                    svg = render_svg(drawable.flow, designer=drawable.designer, issues=drawable.issues)
        except OSError as exc:
            return _text(HTTPStatus.NOT_FOUND, f"line {line}: cannot read its flow {path}: {exc.strerror or exc}")
        except FlowInvalid as exc:
            errors = [str(i) for i in exc.issues if i.severity == "error"]
            more = f"\n  … and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
            return _text(HTTPStatus.UNPROCESSABLE_ENTITY,
                         f"line {line}: its flow is invalid, so the line does not run it "
                         f"(callgate flow validate {path}):\n" + "\n".join(f"  {e}" for e in errors[:MAX_ERRORS_SHOWN])
                         + more)
        except DotMissing:
            return _text(HTTPStatus.SERVICE_UNAVAILABLE,
                         f"The gateway cannot draw flows: Graphviz (the dot command) is not installed there; "
                         f"{DOT_HINT} (bash deploy/quickstart.sh install does it).")
        except RenderError as exc:
            return _text(HTTPStatus.INTERNAL_SERVER_ERROR, f"line {line}: the flow could not be drawn: {exc}")
        with self._lock:
            self._cache[line] = (key, svg)
        return HTTPStatus.OK, svg, SVG_MIME, dict(SVG_HEADERS)

    def _cached(self, line: str, key: object) -> bytes | None:
        with self._lock:
            hit = self._cache.get(line)
        if hit is None:
            return None
        old, svg = hit
        same = old is key if isinstance(key, Flow) else old == key
        return svg if same else None


def _text(status: HTTPStatus, message: str) -> tuple[HTTPStatus, bytes, str, dict[str, str]]:
    return status, (message + "\n").encode(), TEXT_MIME, {}
