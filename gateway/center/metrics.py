"""Historical metrics from contact records: handled, abandoned, handle and answer times, service level.

Pure functions over record dicts as ContactStore returns them, plus ``metrics_between`` that queries a
store. A contact counts in the interval holding its ``initiated_at`` (since <= initiated_at < until) and
in the hour bucket of that instant, with all of its durations, even the parts after ``until``. SMS
records are left out. The definitions, with Amazon Connect's names, are in docs/contacts-and-metrics.md.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Iterable

from gateway.center.records import ContactStore, outcome_of

GROUPINGS = ("queue", "agent", "hour")
DEFAULT_SL_SECONDS = 20.0

SUMMARY_FIELDS = (
    "contacts", "queued", "handled", "abandoned", "voicemails", "outbound", "callbacks", "in_progress",
    "avg_handle_seconds", "avg_acw_seconds", "avg_answer_seconds", "avg_abandon_seconds",
    "service_level", "longest_wait_seconds",
)


def interaction_end(record: dict) -> float | None:
    """When the agent's conversation ended: agent_interaction_end_at where recorded, else ended_at."""
    end = record.get("agent_interaction_end_at")
    return record.get("ended_at") if end is None else end


def handle_seconds(record: dict) -> float | None:
    """connected_to_agent_at -> end of after-contact work (or of the conversation when no ACW end is
    recorded): talk + hold + ACW. None for a contact no agent took or that has not ended."""
    start, end = record.get("connected_to_agent_at"), interaction_end(record)
    if start is None or end is None:
        return None
    acw_end = record.get("after_contact_work_end_at")
    if acw_end is not None and acw_end > end:
        end = acw_end
    return max(0.0, end - start)


def acw_seconds(record: dict) -> float | None:
    """Length of the after-contact work: conversation end -> after_contact_work_end_at."""
    end, acw_end = interaction_end(record), record.get("after_contact_work_end_at")
    if record.get("connected_to_agent_at") is None or end is None or acw_end is None:
        return None
    return max(0.0, acw_end - end)


def queue_wait(record: dict) -> float | None:
    """enqueued_at -> connected_to_agent_at for a contact an agent took, -> ended_at for one that was
    abandoned; None otherwise (not queued, a callback, or left the queue another way, e.g. to voicemail)."""
    enqueued = record.get("enqueued_at")
    if enqueued is None or record.get("initiation_method") == "CALLBACK":
        return None
    outcome = outcome_of(record)
    if outcome == "handled":
        return max(0.0, record["connected_to_agent_at"] - enqueued)
    if outcome == "abandoned":
        return max(0.0, record["ended_at"] - enqueued)
    return None


def summarize(records: Iterable[dict], *, sl_seconds: float = DEFAULT_SL_SECONDS) -> dict:
    """The metrics of a set of contacts (SUMMARY_FIELDS); averages, service level and longest wait are
    None when nothing was there to measure."""
    counts = dict.fromkeys(("contacts", "queued", "handled", "abandoned", "voicemails", "outbound",
                            "callbacks", "in_progress"), 0)
    handle, acw, answer, abandon = [], [], [], []
    for rec in records:
        outcome = outcome_of(rec)
        if outcome == "sms":
            continue
        counts["contacts"] += 1
        method = rec.get("initiation_method")
        counts["queued"] += rec.get("enqueued_at") is not None
        counts["outbound"] += method == "OUTBOUND"
        counts["callbacks"] += method == "CALLBACK"
        if outcome == "in_progress":
            counts["in_progress"] += 1
            continue
        if outcome == "handled":
            counts["handled"] += 1
            _add(handle, handle_seconds(rec))
            _add(acw, acw_seconds(rec))
            _add(answer, queue_wait(rec))
        elif outcome == "abandoned":
            counts["abandoned"] += 1
            _add(abandon, queue_wait(rec))
        elif outcome == "voicemail":
            counts["voicemails"] += 1
    in_sl = sum(1 for wait in answer if wait <= sl_seconds)
    late_abandons = sum(1 for wait in abandon if wait > sl_seconds)
    sl_base = len(answer) + late_abandons
    return {
        **counts,
        "avg_handle_seconds": _mean(handle),
        "avg_acw_seconds": _mean(acw),
        "avg_answer_seconds": _mean(answer),
        "avg_abandon_seconds": _mean(abandon),
        "service_level": round(100.0 * in_sl / sl_base, 2) if sl_base else None,
        "longest_wait_seconds": round(max(answer + abandon), 2) if answer or abandon else None,
    }


def in_interval(record: dict, since: float | None, until: float | None) -> bool:
    """since <= initiated_at < until (an open end when None); a record without initiated_at is in
    no bounded interval."""
    start = record.get("initiated_at")
    if start is None:
        return since is None and until is None
    return (since is None or start >= since) and (until is None or start < until)


def group_key(record: dict, by: str, tz: tzinfo | None = None) -> str | None:
    """The record's group: its queue id, its agent id, or the start of its hour as ISO 8601 with the UTC
    offset (``2025-12-01T09:00+01:00``) in ``tz`` (None: the local zone). None when the field is missing."""
    if by == "queue":
        return record.get("queue_id")
    if by == "agent":
        return record.get("agent_id")
    if by == "hour":
        start = record.get("initiated_at")
        if start is None:
            return None
        moment = datetime.fromtimestamp(start, tz) if tz is not None else datetime.fromtimestamp(start).astimezone()
        return moment.replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")
    raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")


def compute(records: Iterable[dict], *, since: float | None = None, until: float | None = None,
            by: str | None = None, sl_seconds: float = DEFAULT_SL_SECONDS, tz: tzinfo | None = None) -> dict:
    """{"total": summary, "groups": [{"key": ..., **summary}]} over the records in [since, until).

    Groups (only with ``by``) are the queues or agents in id order, or the hours in time order, that have
    at least one contact; contacts without the field (no queue, no agent) form the group with key None,
    listed last."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if sl_seconds < 0:
        raise ValueError(f"sl_seconds must be >= 0, got {sl_seconds}")
    chosen = [r for r in records if in_interval(r, since, until) and outcome_of(r) != "sms"]
    groups = []
    if by is not None:
        buckets: dict[str | None, list[dict]] = {}
        for rec in chosen:
            buckets.setdefault(group_key(rec, by, tz), []).append(rec)
        order = sorted(buckets, key=lambda k: (k is None, k or ""))
        if by == "hour":
            order = sorted(buckets, key=lambda k: (k is None, _hour_start(k)))
        groups = [{"key": key, **summarize(buckets[key], sl_seconds=sl_seconds)} for key in order]
    return {"total": summarize(chosen, sl_seconds=sl_seconds), "groups": groups}


def metrics_between(store: ContactStore, since: float | None, until: float | None, *, by: str | None = None,
                    sl_seconds: float = DEFAULT_SL_SECONDS, tz: tzinfo | None = None) -> dict:
    """``compute`` over the store's records initiated in [since, until), with the question asked."""
    records = store.query(since=since, until=until, limit=None)
    result = compute(records, since=since, until=until, by=by, sl_seconds=sl_seconds, tz=tz)
    return {"since": since, "until": until, "by": by, "sl_seconds": sl_seconds, **result}


def _hour_start(key: str | None) -> float:
    return 0.0 if key is None else datetime.fromisoformat(key).timestamp()


def _add(values: list[float], value: float | None) -> None:
    if value is not None:
        values.append(value)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None
