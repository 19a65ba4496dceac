"""The parsed shape of a contact flow in the Amazon Connect flow language (Version "2019-10-30").

Plain data: `validate.py` builds these from JSON, `interpreter.py` runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FLOW_LANGUAGE_VERSION = "2019-10-30"


@dataclass
class Condition:
    """One `Transitions.Conditions[]` entry, e.g. Equals ["1"] -> "sales"."""

    operator: str
    operands: list[str]
    next_action: str


@dataclass
class Action:
    identifier: str
    type: str
    parameters: dict
    next_action: str | None = None
    conditions: list[Condition] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # ErrorType -> NextAction
    json_path: str = ""  # where it sits in the source, e.g. "$.Actions[3]"


@dataclass
class Flow:
    version: str
    start_action: str
    actions: dict[str, Action]
    source: str = "<flow>"
    base_dir: Path = field(default_factory=Path.cwd)  # PromptId paths are relative to this
    settings: dict | None = None  # a flow module's top-level Settings; None for a flow (InvokeFlowModule runs modules)

    def action(self, identifier: str) -> Action:
        return self.actions[identifier]


# Dynamic values in parameter text, e.g. "Hello $.Attributes.name" (Connect's JSONPath-like references).
REFERENCE_RE = re.compile(r"\$\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)*")
FIXED_REFERENCES = frozenset(
    {"$.CustomerEndpoint.Address", "$.SystemEndpoint.Address", "$.StoredCustomerInput", "$.Queue.Name",
     "$.ContactId", "$.Channel"}
)


# Filled by blocks as the flow runs: GetMetricData's queue metrics, and $.External.* from a webhook's reply.
METRICS_REFERENCES = frozenset(
    {"$.Metrics.Queue.Name", "$.Metrics.Queue.ARN", "$.Metrics.Queue.Size", "$.Metrics.Queue.OldestContactAge",
     "$.Metrics.Agents.Online.Count", "$.Metrics.Agents.Available.Count", "$.Metrics.Agents.Staffed.Count",
     "$.Metrics.Agents.AfterContactWork.Count", "$.Metrics.Agents.Busy.Count", "$.Metrics.Agents.Missed.Count",
     "$.Metrics.Agents.Error.Count", "$.Metrics.Agents.NonProductive.Count",
     "$.Metrics.Queue.Position", "$.Metrics.Queue.EstimatedWaitSeconds", "$.Metrics.Queue.EstimatedWaitMinutes"}
)


# Filled by flow modules: the invoking block's Input inside the module, its return in the caller.
MODULE_REFERENCE_PREFIXES = ("$.Modules.Input.", "$.Modules.ResultData.")


def is_known_reference(ref: str) -> bool:
    """True for the references callgate fills in; all others resolve to ""."""
    return (ref in FIXED_REFERENCES or ref in METRICS_REFERENCES or ref.startswith("$.External.")
            or ref == "$.Modules.Result" or ref.startswith(MODULE_REFERENCE_PREFIXES)
            or (ref.startswith(("$.Attributes.", "$.FlowAttributes.")) and ref.count(".") == 2))


def resolve_references(text: str, values: dict[str, str]) -> str:
    """Replace every reference in `text` by its value in `values` ("$.Attributes.x" -> ...), or ""."""
    return REFERENCE_RE.sub(lambda m: values.get(m.group(0), ""), text)
