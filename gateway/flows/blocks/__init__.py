"""The flow blocks callgate runs, one module per family. Adding a block type is adding its checks,
its handler and its error branches to one of these modules (or a new one listed here)."""

from __future__ import annotations

from gateway.flows.blocks import (callback, connect_more, contact_data, control, ending, external, prompts,
                                  queue_flow, queues, routing_checks, third_party, voice, voicemail)

MODULES = (prompts, queues, contact_data, ending, voicemail, voice, control, routing_checks, external, third_party,
           queue_flow, callback, connect_more)

# Error branches each supported type can take; any other ErrorType on it is never used.
ERROR_TYPES: dict[str, set[str]] = {t: e for m in MODULES for t, e in m.ERRORS.items()}
SUPPORTED_TYPES = frozenset(ERROR_TYPES)
NEEDS_NEXT_ACTION = frozenset(t for m in MODULES for t in m.NEEDS_NEXT_ACTION)
CHECK_MIXINS = tuple(m.Checks for m in MODULES)
ACTION_MIXINS = tuple(m.Actions for m in MODULES)
# Types whose Transitions.Conditions choose the branch (the others ignore Conditions).
USES_CONDITIONS = frozenset({"GetParticipantInput"}).union(*(getattr(m, "USES_CONDITIONS", ()) for m in MODULES))
# Why a Connect type is not run here, where that helps ("not supported here: <Type> at <path>: <why>").
UNSUPPORTED_REASONS: dict[str, str] = {t: why for m in MODULES for t, why in getattr(m, "UNSUPPORTED", {}).items()}
