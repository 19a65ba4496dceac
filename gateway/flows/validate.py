"""Check a flow document in the Amazon Connect flow language and build a `Flow` from it.

Every problem is collected (not just the first), each with its JSON path, the action identifier and,
where the text allows, its line and column. Errors make the flow invalid; warnings (such as an
unreachable action) do not.
"""

from __future__ import annotations

import bisect
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from json.decoder import scanstring
from pathlib import Path

from gateway.flows.blocks import CHECK_MIXINS, ERROR_TYPES, NEEDS_NEXT_ACTION, SUPPORTED_TYPES  # noqa: F401
from gateway.flows.blocks import UNSUPPORTED_REASONS, USES_CONDITIONS
from gateway.flows.blocks.voicemail import VOICEMAIL_TYPE, voicemail_options  # noqa: F401 - re-exported
from gateway.flows.model import (
    FLOW_LANGUAGE_VERSION,
    REFERENCE_RE,
    Action,
    Condition,
    Flow,
    is_known_reference,
)
from gateway.flows.values import PROMPT_PARAMETERS, parse_seconds  # noqa: F401 - parse_seconds re-exported
from gateway.flows.values import key_path as _key_path
from gateway.flows.values import kind as _kind

MAX_ACTIONS = 250  # Connect's per-flow limit
MAX_IDENTIFIER_LENGTH = 50
IDENTIFIER_FORBIDDEN = set("%:()\\/=$,;[]{}")
RESERVED_IDENTIFIERS = frozenset(
    {"__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty",
     "isPrototypeOf", "propertyIsEnumerable", "toLocaleString", "__defineGetter__",
     "__defineSetter__", "__lookupGetter__", "__lookupSetter__"}
)


@dataclass
class FlowIssue:
    path: str
    message: str
    identifier: str | None = None
    line: int | None = None
    column: int | None = None
    severity: str = "error"
    source: str = "<flow>"

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        level = "warning: " if self.severity == "warning" else ""
        action = f" (action '{self.identifier}')" if self.identifier is not None else ""
        return f"{where}: {level}{self.path}{action}: {self.message}"


class FlowInvalid(ValueError):
    def __init__(self, issues: list[FlowIssue], source: str) -> None:
        self.issues = issues
        self.source = source
        errors = sum(1 for i in issues if i.severity == "error")
        lines = [f"{source}: invalid flow ({errors} error{'s' if errors != 1 else ''})"]
        lines += [f"  {issue}" for issue in issues]
        super().__init__("\n".join(lines))


def validate_flow_text(
    text: str, source: str = "<flow>", *, base_dir: Path | None = None, flow_refs=None
) -> tuple[Flow | None, list[FlowIssue]]:
    """Validate flow JSON; return (Flow, issues), with Flow None when any issue is an error.

    PromptId files are looked up relative to `base_dir` (default: the folder of `source`); they are
    only checked for existence when `source` names a file (not "<...>") or `base_dir` is given.
    `flow_refs` (a gateway.flows.library.FlowSet: `knows(ref)`, `names()`) are the flows a static
    TransferToFlow or event hook may name; without it such names are not checked.
    """
    check_files = base_dir is not None or not source.startswith("<")
    if base_dir is None:
        base_dir = Path.cwd() if source.startswith("<") else Path(source).resolve().parent
    validator = _Validator(text, source, base_dir, check_files)
    validator.flow_refs = flow_refs
    return validator.run()


def load_flow(path: str | Path) -> Flow:
    """Read and validate a flow file; raise FlowInvalid listing every issue when it has errors."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FlowInvalid([FlowIssue("$", f"cannot read file: {exc.strerror or exc}", source=source)], source)
    except UnicodeDecodeError as exc:
        issue = FlowIssue("$", f"not UTF-8 text (byte {exc.start}: {exc.reason})", source=source)
        raise FlowInvalid([issue], source)
    flow, issues = validate_flow_text(text, source, base_dir=path.resolve().parent)
    if flow is None:
        raise FlowInvalid(issues, source)
    return flow


class _Validator(*CHECK_MIXINS):
    def __init__(self, text: str, source: str, base_dir: Path, check_files: bool) -> None:
        self.text = text
        self.source = source
        self.base_dir = base_dir
        self.check_files = check_files
        self.issues: list[FlowIssue] = []
        # per action: source index of each kept condition, and of each kept error branch by ErrorType
        self.indexes: dict[str, tuple[list[int], dict[str, int]]] = {}
        self.first_use: dict[str, str] = {}  # Identifier -> path of the action that has it first
        self.unknown_refs: dict[str, list] = {}  # "$.External" -> [path, identifier, first ref, count]

    # -- issue collection

    def error(self, path: str, message: str, identifier: str | None = None) -> None:
        self.issues.append(FlowIssue(path, message, identifier, source=self.source))

    def warn(self, path: str, message: str, identifier: str | None = None) -> None:
        self.issues.append(FlowIssue(path, message, identifier, severity="warning", source=self.source))

    def warn_no_branch(self, action: Action, error_type: str, what: str) -> None:
        """A branch the action can take that the flow does not give: the flow would end in an error."""
        if error_type not in action.errors:
            self.warn(f"{action.json_path}.Transitions.Errors",
                      f"no {error_type} branch: {what} ends the flow with an error", action.identifier)

    def bad_target(self, path: str, value: object, identifier: str | None) -> None:
        self.error(path, f"NextAction must be an action Identifier, found {_kind(value)}", identifier)

    # -- top level

    def run(self) -> tuple[Flow | None, list[FlowIssue]]:
        try:
            doc = json.loads(self.text)
        except json.JSONDecodeError as exc:
            self.issues.append(
                FlowIssue("$", f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno, source=self.source)
            )
            return None, self.issues
        except RecursionError:
            self.error("$", "invalid JSON: nested too deeply")
            return None, self.issues
        flow = self.check_document(doc)
        self.report_references()
        self.add_positions()
        self.issues.sort(key=lambda i: (i.line or 0, i.column or 0))
        if any(i.severity == "error" for i in self.issues):
            return None, self.issues
        return flow, self.issues

    def check_document(self, doc: object) -> Flow | None:
        if not isinstance(doc, dict):
            self.error("$", f"top level must be a JSON object (a flow), found {_kind(doc)}")
            return None
        if self.is_wrapper(doc) or self.is_legacy(doc):
            return None
        self.document = doc  # a block may depend on the document: EndFlowModuleExecution only in a module
        settings = doc.get("Settings")
        if "Settings" in doc and not isinstance(settings, dict):
            self.error("$.Settings", f"Settings (of a flow module) must be an object, found {_kind(settings)}")
            settings = None
        version = doc.get("Version")
        if "Version" not in doc:
            self.error("$", f'missing Version (must be "{FLOW_LANGUAGE_VERSION}")')
        elif version != FLOW_LANGUAGE_VERSION:
            self.error("$.Version", f'Version must be "{FLOW_LANGUAGE_VERSION}", found {json.dumps(version)}')
        start = doc.get("StartAction")
        if "StartAction" not in doc:
            self.error("$", "missing StartAction (the Identifier of the first action)")
        elif not isinstance(start, str) or not start:
            self.error("$.StartAction", f"StartAction must be an action Identifier (string), found {_kind(start)}")
            start = None
        raw_actions = doc.get("Actions")
        if "Actions" not in doc:
            self.error("$", "missing Actions (the list of actions)")
            raw_actions = []
        elif not isinstance(raw_actions, list):
            self.error("$.Actions", f"Actions must be a list, found {_kind(raw_actions)}")
            raw_actions = []
        elif len(raw_actions) > MAX_ACTIONS:
            self.error("$.Actions", f"{len(raw_actions)} actions; a flow has at most {MAX_ACTIONS} (Amazon Connect's "
                                    "limit): split it and join the parts with TransferToFlow")

        actions: dict[str, Action] = {}
        for index, raw in enumerate(raw_actions):
            action = self.check_action(index, raw, actions)
            if action is not None and action.identifier not in actions:
                actions[action.identifier] = action
        for action in actions.values():
            self.check_targets(action, actions)
        if isinstance(start, str):
            if start not in actions:
                known = "the Actions list is empty" if not raw_actions else "no action has this Identifier"
                self.error("$.StartAction", f"StartAction '{start}' names no action ({known})")
            else:
                self.check_reachable(start, actions)
        if not isinstance(start, str) or not isinstance(version, str):
            return None
        return Flow(version, start, actions, self.source, self.base_dir, settings)

    def is_wrapper(self, doc: dict) -> bool:
        """An API response or export wrapper around the flow: say where the flow is inside it."""
        if "Actions" in doc:
            return False
        if isinstance(doc.get("ContactFlow"), dict) and "Content" in doc["ContactFlow"]:
            where = "$.ContactFlow.Content"
        elif "Content" in doc and ("Name" in doc or "Type" in doc):
            where = "$.Content"
        else:
            return False
        self.error(
            "$",
            f"this is a DescribeContactFlow response or export wrapper, not a flow: the flow is the JSON "
            f"in {where}; save that as the flow file",
        )
        return True

    def is_legacy(self, doc: dict) -> bool:
        """The old Connect console export ("modules"/"branches"/"start", version "1")."""
        if "Actions" in doc or not isinstance(doc.get("modules"), list):
            return False
        modules = doc["modules"]
        types = sorted({m["type"] for m in modules if isinstance(m, dict) and isinstance(m.get("type"), str)})
        meta = doc.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        named = f" of flow '{name}'" if isinstance(name, str) and name else ""
        self.error(
            "$",
            f"legacy Amazon Connect console export format{named} (top-level \"modules\"/\"start\", "
            f"version {json.dumps(doc.get('version'))}) is not supported: {len(modules)} modules of types "
            f"{', '.join(types) or '(none)'}; open the flow in the Connect flow designer and export it again "
            f'to get the flow language (Version "{FLOW_LANGUAGE_VERSION}", "Actions")',
        )
        return True

    # -- one action

    def check_action(self, index: int, raw: object, seen: dict[str, Action]) -> Action | None:
        path = f"$.Actions[{index}]"
        if not isinstance(raw, dict):
            self.error(path, f"an action must be a JSON object, found {_kind(raw)}")
            return None
        ident = raw.get("Identifier")
        if "Identifier" not in raw:
            self.error(path, "missing Identifier")
            ident = None
        elif not isinstance(ident, str) or not ident:
            self.error(f"{path}.Identifier", f"Identifier must be a non-empty string, found {_kind(ident)}")
            ident = None
        else:
            self.check_identifier(path, ident)
        type_ = raw.get("Type")
        if "Type" not in raw:
            self.error(path, "missing Type", ident)
            type_ = None
        elif not isinstance(type_, str) or not type_:
            self.error(f"{path}.Type", f"Type must be a non-empty string, found {_kind(type_)}", ident)
            type_ = None
        elif type_ not in SUPPORTED_TYPES:
            why = f": {UNSUPPORTED_REASONS[type_]}" if type_ in UNSUPPORTED_REASONS else ""
            self.error(path, f"not supported here: {type_} at {path}{why}", ident)

        params = raw.get("Parameters", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self.error(f"{path}.Parameters", f"Parameters must be an object, found {_kind(params)}", ident)
            params = {}
        next_action, conditions, errors, indexes = self.check_transitions(path, raw.get("Transitions"), ident)
        if ident is None or type_ is None:
            return None
        if ident not in seen:
            self.indexes[ident] = indexes
        action = Action(ident, type_, params, next_action, conditions, errors, path)
        if type_ in SUPPORTED_TYPES:
            self.check_supported(action, indexes)
        return action

    def check_identifier(self, path: str, ident: str) -> None:
        where = f"{path}.Identifier"
        first = self.first_use.setdefault(ident, path)
        if first != path:
            self.error(where, f"duplicate Identifier '{ident}' (first used at {first})", ident)
        if len(ident) > MAX_IDENTIFIER_LENGTH:
            self.error(where, f"Identifier is {len(ident)} characters long (at most {MAX_IDENTIFIER_LENGTH})", ident)
        bad = sorted(set(ident) & IDENTIFIER_FORBIDDEN)
        if bad:
            self.error(where, f"Identifier contains forbidden characters: {' '.join(bad)}", ident)
        if ident in RESERVED_IDENTIFIERS:
            self.error(where, f"Identifier '{ident}' is a reserved name", ident)

    def check_transitions(
        self, path: str, raw: object, ident: str | None
    ) -> tuple[str | None, list[Condition], dict[str, str], tuple[list[int], dict[str, int]]]:
        path = f"{path}.Transitions"
        conditions: list[Condition] = []
        errors: dict[str, str] = {}
        indexes: tuple[list[int], dict[str, int]] = ([], {})
        if raw is None:
            return None, conditions, errors, indexes
        if not isinstance(raw, dict):
            self.error(path, f"Transitions must be an object, found {_kind(raw)}", ident)
            return None, conditions, errors, indexes
        next_action = raw.get("NextAction")
        if next_action is not None and (not isinstance(next_action, str) or not next_action):
            self.bad_target(f"{path}.NextAction", next_action, ident)
            next_action = None

        raw_conditions = raw.get("Conditions", [])
        if not isinstance(raw_conditions, list):
            self.error(f"{path}.Conditions", f"Conditions must be a list, found {_kind(raw_conditions)}", ident)
            raw_conditions = []
        for i, entry in enumerate(raw_conditions):
            condition = self.check_condition(f"{path}.Conditions[{i}]", entry, ident)
            if condition is not None:
                conditions.append(condition)
                indexes[0].append(i)

        raw_errors = raw.get("Errors", [])
        if not isinstance(raw_errors, list):
            self.error(f"{path}.Errors", f"Errors must be a list, found {_kind(raw_errors)}", ident)
            raw_errors = []
        for i, entry in enumerate(raw_errors):
            where = f"{path}.Errors[{i}]"
            if not isinstance(entry, dict):
                self.error(where, f"an error branch must be an object, found {_kind(entry)}", ident)
                continue
            error_type, target = entry.get("ErrorType"), entry.get("NextAction")
            if not isinstance(error_type, str) or not error_type:
                self.error(f"{where}.ErrorType", f"ErrorType must be a non-empty string, found {_kind(error_type)}",
                           ident)
                continue
            if not isinstance(target, str) or not target:
                self.bad_target(f"{where}.NextAction", target, ident)
                continue
            if error_type in errors:
                self.warn(where, f"second {error_type} branch is ignored (the first one is used)", ident)
                continue
            errors[error_type] = target
            indexes[1][error_type] = i
        return next_action, conditions, errors, indexes

    def check_condition(self, where: str, entry: object, ident: str | None) -> Condition | None:
        if not isinstance(entry, dict):
            self.error(where, f"a condition must be an object, found {_kind(entry)}", ident)
            return None
        target = entry.get("NextAction")
        if not isinstance(target, str) or not target:
            self.bad_target(f"{where}.NextAction", target, ident)
            target = None
        cond = entry.get("Condition")
        if not isinstance(cond, dict):
            self.error(f"{where}.Condition", f"missing Condition {{Operator, Operands}} (found {_kind(cond)})", ident)
            return None
        operator, operands = cond.get("Operator"), cond.get("Operands")
        ok = True
        if not isinstance(operator, str) or not operator:
            self.error(f"{where}.Condition.Operator",
                       f'Operator must be a string such as "Equals", found {_kind(operator)}', ident)
            ok = False
        if "Operands" not in cond:
            self.error(f"{where}.Condition", "Condition without Operands", ident)
            ok = False
        elif not isinstance(operands, list) or not operands:
            self.error(f"{where}.Condition.Operands",
                       f"Operands must be a non-empty list, found {_kind(operands)}", ident)
            ok = False
        elif not all(isinstance(o, str) for o in operands):
            self.error(f"{where}.Condition.Operands", f"Operands must be strings, found {json.dumps(operands)}", ident)
            ok = False
        if not ok or target is None:
            return None
        return Condition(operator, list(operands), target)

    def check_targets(self, action: Action, actions: dict[str, Action]) -> None:
        base = f"{action.json_path}.Transitions"
        cond_index, error_index = self.indexes[action.identifier]
        targets = []
        if action.next_action is not None:
            targets.append((f"{base}.NextAction", action.next_action))
        targets += [
            (f"{base}.Conditions[{i}].NextAction", c.next_action) for i, c in zip(cond_index, action.conditions)
        ]
        targets += [(f"{base}.Errors[{error_index[k]}].NextAction", t) for k, t in action.errors.items()]
        for where, target in targets:
            if target not in actions:
                self.error(where, f"transition to missing action '{target}'", action.identifier)

    def check_reachable(self, start: str, actions: dict[str, Action]) -> None:
        seen, todo = {start}, [start]
        while todo:
            action = actions[todo.pop()]
            nexts = [action.next_action, *(c.next_action for c in action.conditions), *action.errors.values()]
            for target in nexts:
                if target in actions and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for ident, action in actions.items():
            if ident not in seen:
                self.warn(action.json_path, f"unreachable from StartAction '{start}' (never runs)", ident)

    # -- parameters of the types callgate runs

    def check_supported(self, action: Action, indexes: tuple[list[int], dict[str, int]]) -> None:
        path, ident, params = action.json_path, action.identifier, action.parameters
        allowed = ERROR_TYPES[action.type]
        cond_index, error_index = indexes
        for error_type in action.errors:
            if error_type not in allowed:
                self.warn(f"{path}.Transitions.Errors[{error_index[error_type]}]",
                          f"{action.type} never raises {error_type}; this branch is never taken", ident)
        if action.type in NEEDS_NEXT_ACTION and action.next_action is None:
            self.error(f"{path}.Transitions", f"missing Transitions.NextAction ({action.type} continues to it)", ident)
        if action.conditions and action.type not in USES_CONDITIONS:
            self.warn(f"{path}.Transitions.Conditions", f"{action.type} ignores Conditions", ident)
        check = getattr(self, f"check_{action.type.replace('.', '_')}", None)
        if check is not None:
            check(action, path, ident, params)

    def check_prompt(self, path: str, ident: str, params: dict) -> None:
        present = [k for k in PROMPT_PARAMETERS if k in params]
        if "Media" in params:
            self.error(f"{path}.Parameters.Media",
                       "Media (S3 audio) prompts are not supported here; use PromptId with a local WAV file", ident)
            return
        if not present:
            self.error(f"{path}.Parameters", "missing prompt: give one of Text, SSML or PromptId", ident)
            return
        if len(present) > 1:
            self.error(f"{path}.Parameters", f"give only one prompt parameter, found {', '.join(present)}", ident)
            return
        key = present[0]
        where, value = f"{path}.Parameters.{key}", params[key]
        if not isinstance(value, str):
            self.error(where, f"{key} must be a string, found {_kind(value)}", ident)
            return
        if not value.strip():
            self.error(where, f"{key} is empty", ident)
            return
        if key == "PromptId":
            self.check_prompt_file(where, ident, value)
            return
        if key == "SSML":
            if not value.lstrip().startswith("<"):
                self.warn(where, "SSML has no <speak> element; it is spoken as plain text", ident)
            else:
                try:
                    ET.fromstring(value)
                except ET.ParseError as exc:
                    self.error(where, f"SSML is not well-formed XML: {exc}", ident)
        self.check_references(where, ident, value)

    def check_prompt_file(self, where: str, ident: str, value: str) -> None:
        if value.startswith("arn:") or REFERENCE_RE.fullmatch(value):
            self.error(where, f"PromptId must be a local WAV file path (relative to the flow's folder); "
                              f"Connect prompt-library ARNs and references are not supported here: '{value}'", ident)
            return
        if not value.lower().endswith(".wav"):
            self.warn(where, f"PromptId '{value}' does not end in .wav", ident)
        file = self.base_dir / value
        if self.check_files and not file.is_file():
            self.error(where, f"prompt file not found: {file}", ident)

    def check_references(self, where: str, ident: str, text: str) -> None:
        """Remember references callgate never fills; one warning per namespace is given at the end."""
        for ref in REFERENCE_RE.findall(text):
            if not is_known_reference(ref):
                namespace = ".".join(ref.split(".")[:2])
                first = self.unknown_refs.setdefault(namespace, [where, ident, ref, 0])
                first[3] += 1

    def report_references(self) -> None:
        for namespace, (where, ident, ref, count) in self.unknown_refs.items():
            more = f"{count} uses, first " if count > 1 else ""
            self.warn(where, f"{namespace} is not set by callgate ({more}{ref}); it resolves to empty text", ident)









    # -- line and column for path-based issues

    def add_positions(self) -> None:
        pending = [i for i in self.issues if i.line is None]
        if not pending:
            return
        try:
            positions = _json_positions(self.text)
        except (RecursionError, IndexError, ValueError):
            return
        line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        for issue in pending:
            path = issue.path
            while path not in positions and path != "$":
                path = _parent_path(path)
            offset = positions.get(path)
            if offset is None:
                continue
            line = bisect.bisect_right(line_starts, offset)
            issue.line, issue.column = line, offset - line_starts[line - 1] + 1


_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LAST_SEGMENT = re.compile(r'(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$')
_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null|NaN|-?Infinity")


def _parent_path(path: str) -> str:
    m = _LAST_SEGMENT.search(path)
    return path[: m.start()] if m else "$"


def _json_positions(text: str) -> dict[str, int]:
    """Offset of the start of every value in (already valid) JSON text, keyed by JSON path."""
    positions: dict[str, int] = {}

    def value(i: int, path: str) -> int:
        i = _WS.match(text, i).end()
        positions[path] = i
        c = text[i]
        if c == "{":
            i = _WS.match(text, i + 1).end()
            if text[i] == "}":
                return i + 1
            while True:
                key, i = scanstring(text, i + 1)
                i = _WS.match(text, i).end() + 1  # past ':'
                i = _WS.match(text, value(i, path + _key_path(key))).end()
                if text[i] == "}":
                    return i + 1
                i = _WS.match(text, i + 1).end()  # past ','
        if c == "[":
            i = _WS.match(text, i + 1).end()
            if text[i] == "]":
                return i + 1
            n = 0
            while True:
                i = _WS.match(text, value(i, f"{path}[{n}]")).end()
                n += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        if c == '"':
            return scanstring(text, i + 1)[1]
        m = _SCALAR.match(text, i)
        if m is None:
            raise ValueError(f"unexpected character at {i}")
        return m.end()

    value(0, "$")
    return positions
