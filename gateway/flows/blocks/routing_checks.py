"""Blocks that ask about the gateway's state or change how the contact is routed:
CheckHoursOfOperation, CheckMetricData, GetMetricData and UpdateContactRoutingBehavior.

Hours come from the contact's `services` (gateway/flows/services.py); queue metrics from the
contact's `queue_metrics(queue_ref)` (the Center's counts, under the names CheckMetricData uses);
routing changes go to the contact's `set_routing(priority=..., age_adjustment=...)`.

Each block module gives the validator its checks (`Checks.check_<Type>`) and the interpreter its
handlers (`Actions.do_<Type>`), plus the error branches each type can take."""

from __future__ import annotations

import json
import math

from gateway.flows.model import Action, Condition
from gateway.flows.runtime import Go
from gateway.flows.values import key_path, kind

AGENT_METRICS = ("NumberOfAgentsAvailable", "NumberOfAgentsStaffed", "NumberOfAgentsOnline")
QUEUE_METRICS = ("NumberOfContactsInQueue", "OldestContactInQueueAgeSeconds")
METRIC_TYPES = (*AGENT_METRICS, *QUEUE_METRICS)
# The designer stores the time-in-queue threshold in milliseconds: its "300 sec." is written 300000
# (shared/flows/real 07 and the same flow's old export, 26, side by side).
OLDEST_UNIT_MS = 1000.0
NUMBER_OPERATORS = {
    "Equals": lambda a, b: a == b,
    "NumberGreaterThan": lambda a, b: a > b,
    "NumberLessThan": lambda a, b: a < b,
    "NumberGreaterOrEqualTo": lambda a, b: a >= b,
    "NumberLessOrEqualTo": lambda a, b: a <= b,
}
# GetMetricData: the Center's counts under Connect's $.Metrics references.
METRIC_REFERENCES = {
    "$.Metrics.Queue.Size": "NumberOfContactsInQueue",
    "$.Metrics.Queue.OldestContactAge": "OldestContactInQueueAgeSeconds",
    "$.Metrics.Agents.Online.Count": "NumberOfAgentsOnline",
    "$.Metrics.Agents.Available.Count": "NumberOfAgentsAvailable",
    "$.Metrics.Agents.Staffed.Count": "NumberOfAgentsStaffed",
    "$.Metrics.Agents.AfterContactWork.Count": "NumberOfAgentsAfterContactWork",
    "$.Metrics.Agents.Busy.Count": "NumberOfAgentsOnContact",
    "$.Metrics.Agents.Missed.Count": "NumberOfAgentsMissed",
    "$.Metrics.Agents.Error.Count": "NumberOfAgentsMissed",  # an agent who missed an offer is in Error
    # callgate's own (Connect has no position in flows): the caller's place and wait (gateway/center/router.py)
    "$.Metrics.Queue.Position": "PositionInQueue",
    "$.Metrics.Queue.EstimatedWaitSeconds": "EstimatedWaitSeconds",
    "$.Metrics.Queue.EstimatedWaitMinutes": "EstimatedWaitMinutes",   # rounded up: "about 3 minutes"
}
DEFAULT_PRIORITY = 5           # Connect's priority for a contact nobody changed; lower is served first
MAX_PRIORITY = 2**63 - 1

ERRORS = {
    "CheckHoursOfOperation": {"NoMatchingError"},
    "CheckMetricData": {"NoMatchingCondition", "NoMatchingError"},
    "GetMetricData": {"NoMatchingError"},
    "UpdateContactRoutingBehavior": set(),
}
NEEDS_NEXT_ACTION = {"GetMetricData", "UpdateContactRoutingBehavior"}
USES_CONDITIONS = {"CheckHoursOfOperation", "CheckMetricData"}


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        return None
    return value if math.isfinite(value) else None


def _integer(value: object) -> int | None:
    """A static integer parameter (a JSON number or numeric text such as "600"); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _metric_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Checks:
    def check_CheckHoursOfOperation(self, action: Action, path: str, ident: str, params: dict) -> None:
        if "HoursOfOperationId" in params:
            where, value = f"{path}.Parameters.HoursOfOperationId", params["HoursOfOperationId"]
            if not isinstance(value, str) or not value.strip():
                self.error(where, f"HoursOfOperationId must be the name of an [[hours]] table in callgate.toml, "
                                  f"found {kind(value)}", ident)
            else:
                self.check_references(where, ident, value)
        cond_index = self.indexes[ident][0]
        seen: set[str] = set()
        for i, cond in zip(cond_index, action.conditions):
            where = f"{path}.Transitions.Conditions[{i}].Condition"
            if cond.operator != "Equals":
                self.error(f"{where}.Operator", "CheckHoursOfOperation supports only Equals True / Equals False, "
                                                f"found '{cond.operator}'", ident)
                continue
            for j, operand in enumerate(cond.operands):
                value = operand.strip().capitalize()
                if value not in ("True", "False"):
                    self.error(f"{where}.Operands[{j}]", f'operand must be "True" (in hours) or "False" (out of '
                                                         f"hours), found {json.dumps(operand)}", ident)
                elif value in seen:
                    self.warn(f"{where}.Operands[{j}]", f'"{value}" already has an earlier condition; this one '
                                                        "is never taken", ident)
                seen.add(value)
        for value, meaning in (("True", "in hours"), ("False", "out of hours")):
            if value not in seen:
                self.warn(f"{path}.Transitions.Conditions", f'no Equals "{value}" condition: a contact {meaning} '
                                                            "ends the flow with an error", ident)
        self.warn_no_branch(action, "NoMatchingError", "a missing schedule")

    def check_CheckMetricData(self, action: Action, path: str, ident: str, params: dict) -> None:
        metric = params.get("MetricType")
        if "MetricType" not in params:
            self.error(f"{path}.Parameters", f"missing MetricType (one of {', '.join(METRIC_TYPES)})", ident)
        elif metric not in METRIC_TYPES:
            self.error(f"{path}.Parameters.MetricType",
                       f"MetricType must be one of {', '.join(METRIC_TYPES)}, found {kind(metric)}", ident)
            metric = None
        self.check_metric_queue(path, ident, params)
        cond_index = self.indexes[ident][0]
        for i, cond in zip(cond_index, action.conditions):
            where = f"{path}.Transitions.Conditions[{i}].Condition"
            if cond.operator not in NUMBER_OPERATORS:
                self.error(f"{where}.Operator", f"CheckMetricData compares numbers: the operator must be one of "
                                                f"{', '.join(NUMBER_OPERATORS)}, found '{cond.operator}'", ident)
                continue
            if len(cond.operands) != 1 or _number(cond.operands[0]) is None:
                self.error(f"{where}.Operands", f"one number expected, found {json.dumps(cond.operands)}", ident)
                continue
            threshold = _number(cond.operands[0])
            if metric in AGENT_METRICS and (cond.operator, threshold) != ("NumberGreaterThan", 0):
                self.warn(where, f"Connect allows only NumberGreaterThan 0 for {metric}; callgate compares "
                                 "as written", ident)
            if metric == "OldestContactInQueueAgeSeconds" and 0 < threshold < OLDEST_UNIT_MS:
                self.warn(f"{where}.Operands[0]", f"the time-in-queue threshold is in milliseconds, as the Connect "
                                                  f"designer writes it (300 s is 300000): {cond.operands[0]} "
                                                  f"means {threshold / OLDEST_UNIT_MS:g} s", ident)
        if not action.conditions:
            self.warn(f"{path}.Transitions.Conditions", "no conditions: every contact takes NoMatchingCondition",
                      ident)
        self.warn_no_branch(action, "NoMatchingCondition", "a value no condition matches")

    def check_GetMetricData(self, action: Action, path: str, ident: str, params: dict) -> None:
        self.check_metric_queue(path, ident, params)
        channel = params.get("QueueChannel")
        if channel is not None and channel not in ("Voice", "Chat"):
            self.error(f"{path}.Parameters.QueueChannel",
                       f'QueueChannel must be "Voice" or "Chat", found {kind(channel)}', ident)
        elif channel == "Chat":
            self.warn(f"{path}.Parameters.QueueChannel", "only voice contacts wait in callgate's queues: the "
                                                         "Chat metrics are the queue's voice metrics", ident)

    def check_metric_queue(self, path: str, ident: str, params: dict) -> None:
        if "AgentId" in params:
            self.error(f"{path}.Parameters.AgentId", "agent queues (AgentId) are not supported here; use QueueId "
                                                     "or the working queue", ident)
        if "QueueId" in params:
            where, queue = f"{path}.Parameters.QueueId", params["QueueId"]
            if not isinstance(queue, str) or not queue.strip():
                self.error(where, f"QueueId must be a non-empty string, found {kind(queue)}", ident)
            else:
                self.check_references(where, ident, queue)

    def check_UpdateContactRoutingBehavior(self, action: Action, path: str, ident: str, params: dict) -> None:
        given = [k for k in ("QueuePriority", "QueueTimeAdjustmentSeconds") if k in params]
        for key in params:
            if key not in ("QueuePriority", "QueueTimeAdjustmentSeconds"):
                self.error(f"{path}.Parameters{key_path(key)}", f"{key} is not supported here (only QueuePriority "
                                                                "or QueueTimeAdjustmentSeconds)", ident)
        if not given:
            self.error(f"{path}.Parameters", "missing QueuePriority (1 is served first, new contacts have 5) or "
                                             "QueueTimeAdjustmentSeconds (seconds added to the time waited)", ident)
            return
        if len(given) == 2:
            self.error(f"{path}.Parameters", "give QueuePriority or QueueTimeAdjustmentSeconds, not both", ident)
        for key in given:
            where, value = f"{path}.Parameters.{key}", params[key]
            number = _integer(value)
            if number is None:
                self.error(where, f"{key} must be a whole number written in the flow (no references), found "
                                  f"{kind(value)}", ident)
            elif key == "QueuePriority" and not 1 <= number <= MAX_PRIORITY:
                self.error(where, f"QueuePriority must be from 1 (served first) to {MAX_PRIORITY}, found {number}",
                           ident)


class Actions:
    async def do_CheckHoursOfOperation(self, action: Action) -> Go:
        ref = action.parameters.get("HoursOfOperationId")
        services = getattr(self.contact, "services", None)
        if services is None:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"),
                      "hours of operation are not known on this contact")
        try:
            is_open, why = services.check_hours(self.resolve(ref) if ref else None, self.working_queue(),
                                                self.clock.time())
        except LookupError as exc:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), str(exc.args[0]))
        wanted = "True" if is_open else "False"
        for cond in action.conditions:
            if cond.operator == "Equals" and any(o.strip().capitalize() == wanted for o in cond.operands):
                return Go(f"condition:{wanted}", cond.next_action, why)
        return Go(f"condition:{wanted}", None, why)

    def working_queue(self) -> str | None:
        return getattr(self.contact, "queue_id", None) or self.contact.queue_name

    def load_metrics(self, action: Action) -> dict:
        queue_metrics = getattr(self.contact, "queue_metrics", None)
        if queue_metrics is None:
            raise LookupError("queue metrics are not known on this contact")
        ref = action.parameters.get("QueueId")
        queue = self.resolve(ref).strip() if ref else None
        if ref and not queue:
            raise LookupError(f"QueueId {ref!r} is empty")
        return queue_metrics(queue)

    async def do_CheckMetricData(self, action: Action) -> Go:
        metric = action.parameters.get("MetricType")
        try:
            metrics = self.load_metrics(action)
        except LookupError as exc:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), str(exc.args[0]))
        if metric not in metrics:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), f"no metric {metric!r}")
        value = float(metrics[metric])
        in_ms = metric == "OldestContactInQueueAgeSeconds"
        compared = value * OLDEST_UNIT_MS if in_ms else value
        unit = f" s ({_metric_text(compared)} ms)" if in_ms else ""
        detail = f"{metric} of queue {metrics.get('QueueName', '?')} is {_metric_text(value)}{unit}"
        for cond in action.conditions:
            if self.metric_matches(cond, compared):
                return Go(f"condition:{cond.operator} {cond.operands[0]}", cond.next_action, detail)
        return Go("NoMatchingCondition", action.errors.get("NoMatchingCondition"), detail)

    @staticmethod
    def metric_matches(cond: Condition, value: float) -> bool:
        test = NUMBER_OPERATORS.get(cond.operator)
        threshold = _number(cond.operands[0]) if cond.operands else None
        return test is not None and threshold is not None and test(value, threshold)

    async def do_GetMetricData(self, action: Action) -> Go:
        try:
            metrics = self.load_metrics(action)
        except LookupError as exc:
            return Go("NoMatchingError", action.errors.get("NoMatchingError"), str(exc.args[0]))
        loaded = {ref: _metric_text(round(float(metrics[name]))) for ref, name in METRIC_REFERENCES.items()
                  if name in metrics}
        loaded["$.Metrics.Agents.NonProductive.Count"] = "0"  # callgate has no custom agent statuses
        loaded["$.Metrics.Queue.Name"] = str(metrics.get("QueueName", ""))
        loaded["$.Metrics.Queue.ARN"] = str(metrics.get("QueueId", ""))
        self.load_references("$.Metrics.", loaded)
        place = ""
        if "$.Metrics.Queue.Position" in loaded:
            place += f", the caller is number {loaded['$.Metrics.Queue.Position']}"
        if "$.Metrics.Queue.EstimatedWaitSeconds" in loaded:
            place += f", estimated wait {loaded['$.Metrics.Queue.EstimatedWaitSeconds']} s"
        return Go("next", action.next_action, f"queue {loaded['$.Metrics.Queue.Name']}: "
                                              f"{loaded.get('$.Metrics.Queue.Size', '?')} waiting, "
                                              f"{loaded.get('$.Metrics.Agents.Available.Count', '?')} agent(s) "
                                              f"available{place}")

    def load_references(self, prefix: str, values: dict[str, str]) -> None:
        """Replace every reference under `prefix` ("$.External.", "$.Metrics.") by `values`."""
        for ref in [r for r in self.loaded_references if r.startswith(prefix)]:
            del self.loaded_references[ref]
        self.loaded_references.update(values)

    async def do_UpdateContactRoutingBehavior(self, action: Action) -> Go:
        params = action.parameters
        priority = _integer(params["QueuePriority"]) if "QueuePriority" in params else None
        adjust = _integer(params["QueueTimeAdjustmentSeconds"]) if "QueueTimeAdjustmentSeconds" in params else None
        set_routing = getattr(self.contact, "set_routing", None)
        if set_routing is None:
            return Go("next", action.next_action, "routing does not apply to this contact")
        set_routing(priority=priority, age_adjustment=float(adjust) if adjust is not None else None)
        said = f"queue priority {priority}" if priority is not None else f"routing age {adjust:+d} s"
        return Go("next", action.next_action, said)
