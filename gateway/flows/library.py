"""The flows a gateway can run by reference: every flow file of its flow folders, validated, and found by
file name, by Metadata.name or by the id at the end of a Connect ARN (`…/contact-flow/<id>`, or
`…/flow-module/<id>` for a flow module: the file is named `<id>.json`, or its Metadata has that "id" or "arn").

`FlowLibrary.refresh()` re-reads the folders (size, mtime and content hash of each `*.json`); a changed
file that validates replaces the old version, one that does not is rejected and the last valid version
keeps serving. Each refresh that changes something publishes a new `FlowSet`, an immutable index: a
call takes the one current when it starts and keeps it, so it finishes on the versions it began with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from gateway.flows.model import Flow
from gateway.flows.validate import FlowInvalid, FlowIssue, validate_flow_text

log = logging.getLogger(__name__)

ARN_FLOW_RE = re.compile(r"^arn:[^:]+:connect:[^:]*:[^:]*:instance/[^/]+/(?:contact-flow|flow-module)/([^/\s]+)$")


def flow_key(ref: str) -> str:
    """The key a reference is looked up by: the id of an ARN, the stem of a `.json` file name, else itself."""
    ref = ref.strip()
    if m := ARN_FLOW_RE.match(ref):
        return m.group(1)
    if ref.lower().endswith(".json"):
        return Path(ref).stem
    return ref


def keys_of(path: Path, doc: object) -> list[str]:
    """What a flow file answers to: its file stem, its Metadata name, and the id its Metadata gives."""
    keys = [path.stem]
    meta = doc.get("Metadata") if isinstance(doc, dict) else None
    if isinstance(meta, dict):
        for field_ in ("name", "id", "arn"):
            value = meta.get(field_)
            if isinstance(value, str) and value.strip():
                key = flow_key(value)
                if key not in keys:
                    keys.append(key)
    return keys


class FlowSet:
    """An immutable index of flows by key, plus why a key has no flow (its file is invalid)."""

    def __init__(self, flows: dict[str, Flow] | None = None, problems: dict[str, str] | None = None) -> None:
        self._flows = dict(flows or {})
        self._problems = dict(problems or {})

    def get(self, ref: str) -> Flow | None:
        return self._flows.get(flow_key(ref))

    def knows(self, ref: str) -> bool:
        key = flow_key(ref)
        return key in self._flows or key in self._problems

    def problem(self, ref: str) -> str | None:
        """Why `ref` names no runnable flow, when it names a file that is there but invalid."""
        return self._problems.get(flow_key(ref))

    def names(self) -> list[str]:
        return sorted(set(self._flows) | set(self._problems))


@dataclass
class FlowFile:
    """One file of the library: the version serving (last valid) and the state of the latest one read."""
    path: Path
    keys: list[str]
    flow: Flow | None = None            # the version serving; None if no version was ever valid
    serving_mtime: float | None = None  # mtime of the version serving
    digest: str = ""                    # of the latest version read
    mtime: float | None = None          # of the latest version read
    issues: list[FlowIssue] = field(default_factory=list)  # of the latest version read
    valid: bool = False                 # the latest version read is the one serving
    checked_at: float | None = None

    @property
    def errors(self) -> list[FlowIssue]:
        return [i for i in self.issues if i.severity == "error"]

    def status(self) -> dict:
        """As published on MQTT: is the file on disk serving, and if not, why and what serves instead."""
        return {"file": str(self.path), "valid": self.valid, "errors": [str(i) for i in self.errors],
                "warnings": sum(1 for i in self.issues if i.severity == "warning"),
                "serving": self.serving_mtime, "names": self.keys}


class FlowLibrary:
    def __init__(self, dirs, *, clock_time=None) -> None:
        seen: list[Path] = []
        for d in dirs:
            d = Path(d).resolve()
            if d not in seen:
                seen.append(d)
        self.dirs = seen
        self.files: dict[Path, FlowFile] = {}
        self.current = FlowSet()
        self._time = clock_time

    def get(self, ref: str) -> Flow | None:
        return self.current.get(ref)

    def file(self, path) -> FlowFile | None:
        return self.files.get(Path(path).resolve())

    def load(self, path) -> Flow:
        """The serving version of a file of the library; FlowInvalid when it has none (like load_flow)."""
        entry = self.file(path)
        if entry is None:
            from gateway.flows.validate import load_flow
            return load_flow(path)
        if entry.flow is None:
            raise FlowInvalid(entry.issues, str(entry.path))
        return entry.flow

    def refresh(self) -> list[FlowFile]:
        """Re-read every flow file; return the files whose state changed (new version taken or rejected,
        file added or removed), after publishing a new FlowSet if any did."""
        found: dict[Path, bytes] = {}
        for d in self.dirs:
            try:
                paths = sorted(p for p in d.glob("*.json") if p.is_file())
            except OSError as exc:
                log.warning("flow folder %s cannot be read: %s", d, exc)
                continue
            for p in paths:
                try:
                    found[p.resolve()] = p.read_bytes()
                except OSError as exc:
                    log.warning("flow file %s cannot be read: %s", p, exc)
        digests = {p: hashlib.sha256(data).hexdigest() for p, data in found.items()}
        new = {p: _parse(found[p]) for p, d in digests.items() if p not in self.files or self.files[p].digest != d}
        # what a TransferToFlow may name: the files as they are now (unchanged ones as last read)
        keys = FlowSet({k: None for p in found for k in (keys_of(p, new[p]) if p in new else self.files[p].keys)})
        now = self._time() if self._time is not None else None
        changed: list[FlowFile] = []
        for path, doc in new.items():
            mtime = _mtime(path)
            entry = self.files.get(path)
            if entry is None:
                entry = self.files[path] = FlowFile(path, keys_of(path, doc))
            entry.digest, entry.mtime, entry.checked_at = digests[path], mtime, now
            flow, entry.issues = _validate(path, found[path], keys)
            entry.valid = flow is not None
            if flow is not None:
                entry.flow, entry.serving_mtime, entry.keys = flow, mtime, keys_of(path, doc)
            changed.append(entry)
        for path, entry in self.files.items():
            if path not in found and entry.digest != "":
                entry.digest, entry.valid, entry.checked_at = "", False, now
                kept = "the last valid version keeps serving" if entry.flow is not None else "nothing was serving"
                entry.issues = [FlowIssue("$", f"the file is gone; {kept}", source=str(path))]
                changed.append(entry)
        if changed:
            self.current = self._index()
        return changed

    def _index(self) -> FlowSet:
        flows: dict[str, Flow] = {}
        problems: dict[str, str] = {}
        owner: dict[str, Path] = {}
        for path, entry in self.files.items():
            for key in entry.keys:
                if key in owner:
                    if owner[key] != path:
                        log.warning("flow %s: '%s' already names %s; that one is used", path, key, owner[key])
                    continue
                owner[key] = path
                if entry.flow is not None:
                    flows[key] = entry.flow
                else:
                    first = entry.errors[0] if entry.errors else None
                    problems[key] = f"flow '{key}' ({path.name}) is invalid" + (f": {first}" if first else "")
        return FlowSet(flows, problems)


def _parse(data: bytes) -> object:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _validate(path: Path, data: bytes, keys: FlowSet) -> tuple[Flow | None, list[FlowIssue]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [FlowIssue("$", f"not UTF-8 text (byte {exc.start}: {exc.reason})", source=str(path))]
    return validate_flow_text(text, str(path), base_dir=path.parent, flow_refs=keys)
