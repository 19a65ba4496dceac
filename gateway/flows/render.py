"""Draw a contact flow as a graph: DOT text built from a Flow, laid out and rendered by Graphviz's `dot`.

One node per action (its type, shortened identifier and a short summary of its parameters), one edge
per branch (NextAction, each condition, each error type), a start marker, terminal and hand-off
actions shaped apart, and actions callgate does not run drawn and marked. `--force` drawings of
invalid flows come from a lenient reading of the JSON (`read_drawable(..., force=True)`).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from gateway.flows import validate
from gateway.flows.model import Action, Condition, Flow
from gateway.flows.validate import FlowInvalid, FlowIssue

DOT_TIMEOUT = 20.0          # seconds one Graphviz run may take
FORMATS = ("svg", "png")
LAYOUTS = ("dot", "designer")
DOT_HINT = "install Graphviz: apt-get install graphviz"
DESIGNER_GAP = 24.0         # points kept between two boxes placed from designer positions
MAX_DESIGNER_SCALE = 4.0    # designer pixels -> points, at most
SUMMARY_WIDTH = 34          # characters per summary line
SUMMARY_LINES = 2
ID_WIDTH = 24
EDGE_LABEL_WIDTH = 28

TERMINAL_TYPES = frozenset({"DisconnectParticipant", "EndFlowExecution", "EndFlowModuleExecution"})
HANDOFF_TYPES = frozenset({"TransferContactToQueue", "TransferToFlow", "TransferParticipantToThirdParty",
                           "DequeueContactAndTransferToQueue", "CreateCallbackContact", "InvokeFlowModule"})
PROMPT_TYPES = frozenset({"MessageParticipant", "GetParticipantInput", "MessageParticipantIteratively",
                          "ConnectParticipantWithLexBot", "GetCustomerInput"})
BRANCH_TYPES = frozenset({"Compare", "CheckHoursOfOperation", "CheckMetricData", "GetMetricData", "Loop",
                          "DistributeByPercentage", "Wait", "CheckContactAttributes"})
FILL = {"prompt": "#dbeafe", "route": "#dcfce7", "branch": "#fef9c3", "terminal": "#e5e7eb",
        "other": "#f8fafc", "unsupported": "#fee2e2"}
OPERATORS = {"Equals": "=", "NumberGreaterThan": ">", "NumberLessThan": "<", "NumberGreaterOrEqualTo": "≥",
             "NumberLessOrEqualTo": "≤", "TextStartsWith": "starts with", "TextEndsWith": "ends with",
             "TextContains": "contains"}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Characters XML 1.0 cannot carry (and lone surrogates from JSON "\ud800"): shown as U+FFFD.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")


class RenderError(RuntimeError):
    """Graphviz could not draw the flow (missing, failed, timed out, or the output could not be written)."""


class DotMissing(RenderError):
    def __init__(self) -> None:
        super().__init__(f"Graphviz's dot command was not found on this machine; {DOT_HINT}")


@dataclass
class Designer:
    """What the Connect designer keeps in `Metadata`: block positions and display names of resources."""

    positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    entry: tuple[float, float] | None = None
    names: dict[str, str] = field(default_factory=dict)   # action identifier -> queue/prompt/flow name


@dataclass
class Drawable:
    """A flow ready to draw, with what the validator said about it."""

    flow: Flow
    designer: Designer
    issues: list[FlowIssue]

    @property
    def errors(self) -> list[FlowIssue]:
        return [i for i in self.issues if i.severity == "error"]


# ----------------------------------------------------------------------------- reading

def read_drawable(path: str | Path, *, force: bool = False) -> Drawable:
    """Read and validate a flow file. Invalid: FlowInvalid, unless `force`, which draws what it can
    (FlowInvalid still when nothing can be drawn: unreadable, not JSON, no Actions list)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FlowInvalid([FlowIssue("$", f"cannot read file: {exc.strerror or exc}", source=str(path))],
                          str(path)) from None
    except UnicodeDecodeError as exc:
        issue = FlowIssue("$", f"not UTF-8 text (byte {exc.start}: {exc.reason})", source=str(path))
        raise FlowInvalid([issue], str(path)) from None
    return drawable_from_text(text, str(path), force=force, base_dir=path.resolve().parent)


def drawable_from_text(text: str, source: str = "<flow>", *, force: bool = False,
                       base_dir: Path | None = None) -> Drawable:
    flow, issues = validate.validate_flow_text(text, source, base_dir=base_dir)
    doc = None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        pass
    designer = designer_metadata(doc)
    if flow is not None:
        return Drawable(flow, designer, issues)
    if not force:
        raise FlowInvalid(issues, source)
    lenient = _lenient_flow(doc, source, base_dir or Path.cwd())
    if lenient is None:
        raise FlowInvalid(issues, source)
    return Drawable(lenient, designer, issues)


def designer_metadata(doc: object) -> Designer:
    """Positions and resource names from a flow document's `Metadata` (empty when there are none)."""
    designer = Designer()
    meta = doc.get("Metadata") if isinstance(doc, dict) else None
    if not isinstance(meta, dict):
        return designer
    designer.entry = _point(meta.get("entryPointPosition"))
    per_action = meta.get("ActionMetadata")
    if not isinstance(per_action, dict):
        return designer
    for ident, data in per_action.items():
        if not isinstance(data, dict):
            continue
        point = _point(data.get("position"))
        if point is not None:
            designer.positions[ident] = point
        for key in ("queue", "ContactFlow", "contactFlow", "promptName", "contactFlowModuleName",
                    "lexV2BotName", "Hours"):
            value = data.get(key)
            name = value.get("text") if isinstance(value, dict) else value
            if isinstance(name, str) and name.strip():
                designer.names[ident] = name.strip()
                break
    return designer


def _point(value: object) -> tuple[float, float] | None:
    if not isinstance(value, dict):
        return None
    x, y = value.get("x"), value.get("y")
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool) \
            and not isinstance(y, bool):
        return float(x), float(y)
    return None


def _lenient_flow(doc: object, source: str, base_dir: Path) -> Flow | None:
    """Whatever actions can be read from an invalid document; None when there is no Actions list."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Actions"), list):
        return None
    actions: dict[str, Action] = {}
    for index, raw in enumerate(doc["Actions"]):
        if not isinstance(raw, dict):
            continue
        ident = raw.get("Identifier")
        if not isinstance(ident, str) or not ident or ident in actions:
            ident = f"$.Actions[{index}]"
        type_ = raw.get("Type") if isinstance(raw.get("Type"), str) and raw.get("Type") else "?"
        params = raw.get("Parameters") if isinstance(raw.get("Parameters"), dict) else {}
        trans = raw.get("Transitions") if isinstance(raw.get("Transitions"), dict) else {}
        next_action = trans.get("NextAction") if isinstance(trans.get("NextAction"), str) else None
        conditions = []
        for entry in trans.get("Conditions") if isinstance(trans.get("Conditions"), list) else []:
            cond = entry.get("Condition") if isinstance(entry, dict) else None
            target = entry.get("NextAction") if isinstance(entry, dict) else None
            if isinstance(cond, dict) and isinstance(target, str) and target:
                operands = cond.get("Operands") if isinstance(cond.get("Operands"), list) else []
                conditions.append(Condition(str(cond.get("Operator", "?")), [_text(o) for o in operands], target))
        errors: dict[str, str] = {}
        for entry in trans.get("Errors") if isinstance(trans.get("Errors"), list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("NextAction"), str) and entry["NextAction"]:
                errors.setdefault(_text(entry.get("ErrorType", "?")), entry["NextAction"])
        actions[ident] = Action(ident, type_, params, next_action or None, conditions, errors, f"$.Actions[{index}]")
    start = doc.get("StartAction") if isinstance(doc.get("StartAction"), str) else ""
    return Flow(str(doc.get("Version", "")), start, actions, source, base_dir)


# ----------------------------------------------------------------------------- DOT text

def flow_to_dot(flow: Flow, *, layout: str = "dot", designer: Designer | None = None,
                issues: list[FlowIssue] | None = None, title: str | None = None) -> str:
    """The DOT text of the flow's graph. layout "designer" pins each action at its designer position
    (for `neato -n`); actions without one are lined up below the others."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    designer = designer or Designer()
    flagged: dict[str, int] = {}
    for issue in issues or []:
        if issue.severity == "error" and issue.identifier is not None \
                and not issue.message.startswith("not supported here"):
            flagged[issue.identifier] = flagged.get(issue.identifier, 0) + 1
    names = {ident: f"a{i}" for i, ident in enumerate(flow.actions)}
    short = short_ids(flow.actions)
    boxes = {ident: _box(action, designer.names.get(ident), flagged.get(ident, 0), short[ident])
             for ident, action in flow.actions.items()}
    pins = _pins(flow, designer, boxes) if layout == "designer" else None

    out = ['digraph "flow" {']
    graph = {"fontname": "Helvetica", "fontsize": "11", "labelloc": "t", "nodesep": "0.3", "ranksep": "0.45",
             "bgcolor": "white", "pad": "0.2"}
    if layout == "designer":
        graph.update({"splines": "true", "outputorder": "edgesfirst"})
    label = title if title is not None else _title(flow)
    graph["label"] = _esc(label)
    out.append(f"  graph [{_attrs(graph)}];")
    out.append('  node [fontname="Helvetica", fontsize="10", shape="box", style="rounded,filled", '
               'color="#475569", margin="0.12,0.06"];')
    out.append('  edge [fontname="Helvetica", fontsize="9", color="#334155", arrowsize="0.7"];')

    start_attrs = {"label": "Start", "shape": "circle", "style": "filled", "fillcolor": "#166534",
                   "fontcolor": "white", "color": "#166534", "fontsize": "9", "width": "0.5", "fixedsize": "true",
                   "tooltip": "StartAction"}
    if pins is not None:
        start_attrs["pos"] = pins.start
    out.append(f"  start [{_attrs(start_attrs)}];")

    for ident, action in flow.actions.items():
        attrs = _node_attrs(action, boxes[ident])
        if pins is not None:
            attrs["pos"] = pins.actions[ident]
        out.append(f"  {names[ident]} [{_attrs(attrs)}];")

    missing: dict[str, str] = {}

    def target(ident: str) -> str:
        if ident in names:
            return names[ident]
        if ident not in missing:
            missing[ident] = f"m{len(missing)}"
        return missing[ident]

    edges: list[str] = []
    if flow.start_action:
        edges.append(f"  start -> {target(flow.start_action)} [penwidth=\"1.5\"];")
    for ident, action in flow.actions.items():
        edges += _edges(names[ident], action, target)
    for ident, name in missing.items():
        attrs = {"label": _Box("missing action", _fit(_clean(ident), 40), [], []).label(), "shape": "box",
                 "style": "dashed", "color": "#b91c1c", "fontcolor": "#b91c1c", "tooltip": _esc(ident, tooltip=True)}
        if pins is not None:
            attrs["pos"] = pins.below()
        out.append(f"  {name} [{_attrs(attrs)}];")
    out += edges
    out.append("}")
    return "\n".join(out) + "\n"


def _title(flow: Flow) -> str:
    source = Path(flow.source).name if not flow.source.startswith("<") else flow.source
    count = len(flow.actions)
    return f"{source} · {count} action{'s' if count != 1 else ''}"


@dataclass
class _Box:
    """What one node says: the action type, its shortened identifier, a summary and red notes."""

    head: str
    ident: str
    lines: list[str]
    notes: list[str]

    def label(self) -> str:
        """An HTML-like label (bold type, grey identifier, summary, red notes); every text is escaped."""
        rows = [f"<B>{_h(self.head)}</B>", f'<FONT POINT-SIZE="8" COLOR="#64748b">{_h(self.ident)}</FONT>']
        rows += [_h(line) for line in self.lines]
        rows += [f'<FONT COLOR="#b91c1c">{_h(note)}</FONT>' for note in self.notes]
        return "<" + "<BR/>".join(rows) + ">"

    def size(self) -> tuple[float, float]:
        """Rough width and height in points, to keep designer positions from overlapping."""
        rows = [self.head, self.ident, *self.lines, *self.notes]
        return max(_width(r) for r in rows) * 6.0 + 30.0, len(rows) * 13.0 + 16.0


def _box(action: Action, name: str | None, flagged: int, short: str) -> _Box:
    notes = []
    if action.type not in validate.SUPPORTED_TYPES:
        notes.append("not supported here" if action.type != "?" else "no Type")
    if flagged:
        notes.append(f"{flagged} error{'s' if flagged != 1 else ''} (see flow validate)")
    return _Box(_fit(_clean(action.type), 40), short, _summary(action, name), notes)


def _node_attrs(action: Action, box: _Box) -> dict[str, str]:
    supported = action.type in validate.SUPPORTED_TYPES
    kind = _kind(action)
    attrs = {"label": box.label(), "tooltip": _esc(action.identifier, tooltip=True),
             "fillcolor": FILL["unsupported" if not supported else kind]}
    if kind == "terminal":
        attrs["shape"] = "octagon"
        attrs["style"] = "filled"
    elif action.type in HANDOFF_TYPES:
        attrs["peripheries"] = "2"
    if not supported or len(box.notes) > (0 if supported else 1):
        attrs["color"] = "#b91c1c"
        attrs["style"] = attrs.get("style", "rounded,filled") + ",dashed"
    return attrs


def _kind(action: Action) -> str:
    if action.type in TERMINAL_TYPES or (action.next_action is None and not action.conditions
                                         and not action.errors and action.type not in HANDOFF_TYPES):
        return "terminal"
    if action.type in PROMPT_TYPES:
        return "prompt"
    if action.type in HANDOFF_TYPES or action.type == "UpdateContactTargetQueue":
        return "route"
    if action.type in BRANCH_TYPES:
        return "branch"
    return "other"


def _edges(source: str, action: Action, target) -> list[str]:
    """One DOT edge per (target, kind); several branches to the same action share one edge."""
    groups: dict[tuple[str, str], list[str]] = {}
    branches = len(action.conditions) + len(action.errors)
    if action.next_action:
        groups.setdefault((target(action.next_action), "next"), []).append("next" if branches else "")
    for cond in action.conditions:
        groups.setdefault((target(cond.next_action), "condition"), []).append(condition_label(cond))
    for error_type, to in action.errors.items():
        groups.setdefault((target(to), "error"), []).append(_fit(_clean(error_type), EDGE_LABEL_WIDTH))
    lines = []
    for (to, kind), labels in groups.items():
        attrs: dict[str, str] = {}
        text = "\n".join(label for label in labels if label)
        if text:
            attrs["label"] = _esc(text)
        if kind == "error":
            attrs.update({"style": "dashed", "color": "#dc2626", "fontcolor": "#b91c1c"})
        elif kind == "condition":
            attrs.update({"color": "#1d4ed8", "fontcolor": "#1e3a8a"})
        lines.append(f"  {source} -> {to}" + (f" [{_attrs(attrs)}];" if attrs else ";"))
    return lines


def condition_label(cond: Condition) -> str:
    """Edge text of one condition, e.g. Equals ["1"] -> "= 1", TextContains ["x"] -> "contains x"."""
    symbol = OPERATORS.get(cond.operator, cond.operator)
    operands = " | ".join(_clean(o) if o != "" else '""' for o in cond.operands)
    return _fit(f"{_clean(symbol)} {operands}".strip(), EDGE_LABEL_WIDTH)


def _summary(action: Action, name: str | None) -> list[str]:
    """Up to SUMMARY_LINES short lines saying what the action does with its parameters."""
    p = action.parameters
    parts: list[str] = []
    text = _prompt_text(p, name)
    if text is not None:
        parts.append(text)
    t = action.type
    if t == "GetParticipantInput":
        extra = []
        if _truthy(p.get("StoreInput")):
            extra.append(_store_summary(p))
        if "InputTimeLimitSeconds" in p:
            extra.append(f"timeout {_scalar(p['InputTimeLimitSeconds'])} s")
        if extra:
            parts.append(", ".join(extra))
    elif t == "MessageParticipantIteratively":
        messages = p.get("Messages") if isinstance(p.get("Messages"), list) else []
        texts = [_prompt_text(m) for m in messages if isinstance(m, dict)]
        parts.append(f"{len(messages)} message{'s' if len(messages) != 1 else ''}"
                     + (f", every {_scalar(p['InterruptFrequencySeconds'])} s" if "InterruptFrequencySeconds" in p
                        else ""))
        parts += [x for x in texts if x][:1]
    elif t in ("UpdateContactTargetQueue", "TransferContactToQueue", "DequeueContactAndTransferToQueue",
               "GetMetricData", "CreateCallbackContact"):
        if name or "QueueId" in p or "AgentId" in p:
            parts.append("queue " + (name or _resource(p.get("QueueId") or p.get("AgentId"))))
    elif t == "UpdateContactAttributes":
        attrs = p.get("Attributes") if isinstance(p.get("Attributes"), dict) else {}
        parts.append(", ".join(f"{_clean(str(k))} = {_scalar(v)}" for k, v in list(attrs.items())[:3])
                     + (" …" if len(attrs) > 3 else ""))
    elif t == "Compare":
        parts.append(_scalar(p.get("ComparisonValue", "")))
    elif t == "CheckHoursOfOperation":
        parts.append("hours " + (name or _resource(p.get("HoursOfOperationId", "of the queue"))))
    elif t == "CheckMetricData":
        parts.append(_scalar(p.get("MetricType", "queue status")))
    elif t == "InvokeLambdaFunction":
        limit = p.get("InvocationTimeLimitSeconds")
        parts.append(_resource(p.get("LambdaFunctionARN", "")) + (f", {_scalar(limit)} s" if limit is not None else ""))
    elif t == "Loop":
        parts.append(f"{_scalar(p.get('LoopCount', '?'))} times")
    elif t in ("TransferToFlow", "InvokeFlowModule"):
        parts.append(name or _resource(p.get("ContactFlowId") or p.get("FlowModuleId") or ""))
    elif t == "TransferParticipantToThirdParty":
        parts.append(_scalar(p.get("ThirdPartyPhoneNumber", "")))
    elif text is None:
        parts += [f"{_clean(str(k))}: {_scalar(v)}" for k, v in list(p.items())[:2] if _is_scalar(v)]
    return _wrap(" · ".join(x for x in parts if x))


def _prompt_text(p: dict, name: str | None = None) -> str | None:
    if isinstance(p.get("Text"), str):
        return f"“{_flat(p['Text'])}”"
    if isinstance(p.get("SSML"), str):
        return f"“{_flat(html.unescape(_TAG.sub(' ', p['SSML'])))}”"
    if isinstance(p.get("PromptId"), str):
        return "prompt " + (_flat(name) if name else _resource(p["PromptId"]))
    media = p.get("Media")
    if isinstance(media, dict) and isinstance(media.get("Uri"), str):
        return "prompt " + _resource(media["Uri"])
    return None


def _store_summary(p: dict) -> str:
    dtmf = p.get("DTMFConfiguration") if isinstance(p.get("DTMFConfiguration"), dict) else {}
    validation = p.get("InputValidation") if isinstance(p.get("InputValidation"), dict) else {}
    custom = validation.get("CustomValidation") if isinstance(validation.get("CustomValidation"), dict) else {}
    words = ["store digits"]
    if "MaximumLength" in custom:
        words.append(f"max {_scalar(custom['MaximumLength'])}")
    if "PhoneNumberValidation" in validation:
        words.append("phone number")
    if "InputTerminationSequence" in dtmf:
        words.append(f"ends {_scalar(dtmf['InputTerminationSequence'])}")
    return " ".join(words)


def _resource(value: object) -> str:
    """The telling end of an ARN, path or id: "arn:...:function:lookup" -> "lookup", a UUID cut to 8."""
    text = _clean(value) if isinstance(value, str) else _scalar(value)
    if text.startswith("arn:"):
        text = re.split(r"[:/]", text)[-1]
    elif "/" in text and not text.startswith("$."):
        text = text.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F-]{19,}", lambda m: m.group(0)[:8] + "…", text)


def short_ids(identifiers) -> dict[str, str]:
    """A short, still distinct form of each identifier: a UUID's first 8 digits (or its last 12 when
    those clash), a long name cut to ID_WIDTH; the whole identifier when even that clashes."""
    def options(ident: str) -> list[str]:
        text = _clean(ident)
        if UUID_RE.match(text):
            return [text[:8] + "…", "…" + text[-12:], text]
        return [_fit(text, ID_WIDTH), text]

    idents = list(identifiers)
    chosen: dict[str, str] = {}
    for level in range(3):
        pick = {i: options(i)[min(level, len(options(i)) - 1)] for i in idents}
        taken = set(chosen.values())
        counts: dict[str, int] = {}
        for value in pick.values():
            counts[value] = counts.get(value, 0) + 1
        for i in idents:
            if i not in chosen and (counts[pick[i]] == 1 or level == 2) and pick[i] not in taken:
                chosen[i] = pick[i]
    for i in idents:
        chosen.setdefault(i, _clean(i))
    return chosen


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _is_scalar(value: object) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return _flat(value)
    if _is_scalar(value):
        return json.dumps(value)
    return _flat(json.dumps(value, ensure_ascii=False))


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _flat(text: str) -> str:
    return _SPACE.sub(" ", _clean(text)).strip()


def _clean(text: str) -> str:
    return _UNSAFE.sub("\ufffd", text)


def _width(text: str) -> int:
    """Display width: East Asian wide and full-width characters count twice."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _prefix(text: str, width: int) -> int:
    """Length of the longest prefix of text that fits in width."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used > width:
            return i
    return len(text)


def _fit(text: str, width: int) -> str:
    return text if _width(text) <= width else text[: _prefix(text, width - 1)].rstrip() + "…"


def _wrap(text: str) -> list[str]:
    """Word-wrap into at most SUMMARY_LINES lines of SUMMARY_WIDTH, the last one cut with …."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < SUMMARY_LINES:
        if _width(rest) <= SUMMARY_WIDTH:
            lines.append(rest)
            rest = ""
            break
        cut = _prefix(rest, SUMMARY_WIDTH)
        space = rest.rfind(" ", 0, cut + 1)
        if space >= cut // 2:
            cut = space
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        lines[-1] = _fit(lines[-1] + " " + rest, SUMMARY_WIDTH)
    return lines


def _h(text: str) -> str:
    """Text for an HTML-like label: markup escaped, and backslashes doubled (else \\N is the node name)."""
    return html.escape(_clean(text), quote=True).replace("\\", "\\\\")


def _esc(text: str, *, tooltip: bool = False) -> str:
    """A quoted DOT escString: quote escaped, each line break as \\n (centred), & as &amp; (Graphviz
    passes text that looks like an entity through as one), a backslash doubled, twice over in
    tooltips (Graphviz unescapes those two times; once only, \\\\N would turn into the node name)."""
    slash = "\\" * (4 if tooltip else 2)
    lines = _clean(text.replace("\r", " ")).replace("&", "&amp;").split("\n")
    return '"' + "\\n".join(line.replace("\\", slash).replace('"', '\\"') for line in lines) + '"'


def _attrs(attrs: dict[str, str]) -> str:
    parts = []
    for key, value in attrs.items():
        if not (value.startswith("<") or value.startswith('"')):
            value = '"' + value + '"'
        parts.append(f"{key}={value}")
    return ", ".join(parts)


@dataclass
class _Pins:
    """`pos` attributes ("x,y!" in points, y up) for neato -n, from the designer's positions (y down)."""

    actions: dict[str, str]
    start: str
    left: float
    floor: float
    scale: float
    row: int = 0

    def at(self, point: tuple[float, float]) -> str:
        x, y = point
        return f"{x * self.scale:.1f},{-y * self.scale:.1f}!"

    def below(self) -> str:
        """The next place in the row under the drawing, for what the designer did not place."""
        self.row += 1
        return self.at((self.left + 260.0 * (self.row - 1), self.floor + 220.0))


def _pins(flow: Flow, designer: Designer, boxes: dict[str, _Box]) -> _Pins:
    placed = {ident: p for ident, p in designer.positions.items() if ident in flow.actions}
    left = min((x for x, _ in placed.values()), default=0.0)
    floor = max((y for _, y in placed.values()), default=0.0)
    pins = _Pins({}, "", left, floor, _spread(placed, {i: boxes[i].size() for i in placed}))
    for ident in flow.actions:
        pins.actions[ident] = pins.at(placed[ident]) if ident in placed else pins.below()
    start_point = designer.entry
    if start_point is None and flow.start_action in placed:
        x, y = placed[flow.start_action]
        start_point = (x - 120.0, y)
    pins.start = pins.at(start_point or (left - 120.0, 0.0))
    return pins


def _spread(points: dict[str, tuple[float, float]], sizes: dict[str, tuple[float, float]]) -> float:
    """The smallest scale (1 to MAX_DESIGNER_SCALE) at which no two boxes overlap: our boxes say more
    than the designer's, so its positions are spread out as a whole, never moved one by one."""
    scale = 1.0
    items = [(points[i], sizes[i]) for i in points]
    for n, ((x1, y1), (w1, h1)) in enumerate(items):
        for (x2, y2), (w2, h2) in items[n + 1:]:
            dx, dy = abs(x1 - x2), abs(y1 - y2)
            need_x = ((w1 + w2) / 2 + DESIGNER_GAP) / dx if dx else float("inf")
            need_y = ((h1 + h2) / 2 + DESIGNER_GAP) / dy if dy else float("inf")
            scale = max(scale, min(need_x, need_y))
    return min(scale, MAX_DESIGNER_SCALE)


# ----------------------------------------------------------------------------- Graphviz

def dot_command() -> str | None:
    """Path of Graphviz's dot, or None when it is not installed."""
    return shutil.which("dot")


def render(flow: Flow, fmt: str = "svg", *, layout: str = "dot", designer: Designer | None = None,
           issues: list[FlowIssue] | None = None, timeout: float = DOT_TIMEOUT) -> bytes:
    """The flow drawn by Graphviz as SVG or PNG bytes. RenderError (DotMissing) when it cannot be."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    text = flow_to_dot(flow, layout=layout, designer=designer, issues=issues)
    return run_dot(text, fmt, engine="neato" if layout == "designer" else "dot", timeout=timeout)


def render_svg(flow: Flow, **kwargs) -> bytes:
    return render(flow, "svg", **kwargs)


def render_file(flow: Flow, path: str | Path, fmt: str | None = None, **kwargs) -> Path:
    """Draw the flow into `path` (format from its suffix unless given), replacing it atomically."""
    path = Path(path)
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"cannot tell the picture format from {path.name!r}: use .svg or .png")
    data = render(flow, fmt, **kwargs)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def run_dot(text: str, fmt: str, *, engine: str = "dot", timeout: float = DOT_TIMEOUT) -> bytes:
    dot = dot_command()
    if dot is None:
        raise DotMissing()
    args = [dot, f"-K{engine}", f"-T{fmt}"]
    if engine == "neato":
        args.append("-n")
    started = time.monotonic()
    try:
        done = subprocess.run(args, input=text.encode("utf-8"), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RenderError(f"Graphviz did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise RenderError(f"cannot run {dot}: {exc.strerror or exc}") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"Graphviz failed (exit {done.returncode} after {time.monotonic() - started:.1f} s): "
                          + ("; ".join(detail[:3]) or "no output"))
    return done.stdout
