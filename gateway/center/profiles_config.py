"""Reading `[[routing_profiles]]`, `[[security_profiles]]` and an agent's two profile references from the
gateway's TOML, every mistake placed: `callgate.toml: routing_profiles[0].queues[1].queue: no queue
"sales" (did you mean "Sales"?); queues: Sales, support`.
"""

from __future__ import annotations

from gateway.tomltable import TomlTable

from .routing_profiles import (DEFAULT_ROUTING_PROFILE, MAX_DELAY, MAX_PRIORITY, MIN_PRIORITY, RoutingProfile,
                               RoutingQueue, default_routing_profile)
from .security import (BUILTIN_SECURITY_PROFILES, DEFAULT_SECURITY_PROFILE, PERMISSIONS, SecurityProfile,
                       did_you_mean, unknown_permission)


_EXAMPLE = 'queues = [{queue = "support", priority = 1, delay = 0}]'


def _known(kind: str, name: str, known) -> str:
    listed = ", ".join(sorted(known)) or "none"
    return f'no {kind} "{name}"{did_you_mean(name, known)}; {kind}s: {listed}'


def _priority(v: int) -> str | None:
    return None if MIN_PRIORITY <= v <= MAX_PRIORITY else \
        f"must be {MIN_PRIORITY}-{MAX_PRIORITY} (1 is served first), got {v}"


def _delay(v: float) -> str | None:
    return None if 0 <= v <= MAX_DELAY else f"must be 0-{MAX_DELAY:g} seconds, got {v:g}"


def _queue_ref(t: TomlTable, key: str, queue_ids: list[str], default=...) -> str | None:
    ref = t.get(key, str, default)
    if ref is not None and ref not in queue_ids:
        raise t.err(key, _known("queue", ref, queue_ids))
    return ref


def _ids_unique(tables: list[TomlTable], ids: list[str]) -> None:
    first: dict[str, int] = {}
    for i, (t, pid) in enumerate(zip(tables, ids)):
        if pid in first:
            raise t.err("id", f"\"{pid}\" is used twice (also {t.where.split('[')[0]}[{first[pid]}])")
        first[pid] = i


def parse_routing_profiles(root: TomlTable, queue_ids: list[str], id_check) -> dict[str, RoutingProfile]:
    """Every `[[routing_profiles]]` by id, plus the built-in `default` unless the file defines one."""
    tables = root.tables("routing_profiles")
    out: dict[str, RoutingProfile] = {}
    ids = [t.get("id", str, check=id_check) for t in tables]
    _ids_unique(tables, ids)
    for t, pid in zip(tables, ids):
        if "queues" not in t.data:
            raise t.err("queues", f"missing: list the queues this profile serves, e.g. {_EXAMPLE}")
        for j, item in enumerate(t.data["queues"] if isinstance(t.data["queues"], list) else ()):
            if not isinstance(item, dict):
                raise t.err(f"queues[{j}]", f"expected a table like {_EXAMPLE[10:-1]}, got {item!r}")
        entries = t.tables("queues")
        if not entries:
            raise t.err("queues", "empty: a routing profile serves at least one queue")
        queues: list[RoutingQueue] = []
        where: dict[str, int] = {}
        for j, q in enumerate(entries):
            qid = _queue_ref(q, "queue", queue_ids)
            if qid in where:
                raise q.err("queue", f"\"{qid}\" is listed twice in this profile (also queues[{where[qid]}])")
            where[qid] = j
            queues.append(RoutingQueue(qid, q.get("priority", int, 1, check=_priority),
                                       q.get("delay", float, 0.0, check=_delay)))
            q.finish()
        outbound = _queue_ref(t, "default_outbound_queue", queue_ids, None)
        out[pid] = RoutingProfile(pid, t.get("name", str, None) or pid, tuple(queues),
                                  outbound if outbound is not None else queues[0].queue)
        t.finish()
    if DEFAULT_ROUTING_PROFILE not in out:
        out[DEFAULT_ROUTING_PROFILE] = default_routing_profile(queue_ids)
    return out


def parse_security_profiles(root: TomlTable, id_check) -> dict[str, SecurityProfile]:
    """Every `[[security_profiles]]` by id, plus the built-in ones (admin, supervisor, agent) the file
    does not redefine."""
    tables = root.tables("security_profiles")
    ids = [t.get("id", str, check=id_check) for t in tables]
    _ids_unique(tables, ids)
    out = dict(BUILTIN_SECURITY_PROFILES)
    for t, pid in zip(tables, ids):
        if "permissions" not in t.data:
            raise t.err("permissions", f"missing: list what this profile may do, from: {', '.join(PERMISSIONS)} "
                                       "(an empty list is allowed)")
        names = t.strings("permissions")
        first: dict[str, int] = {}
        for i, name in enumerate(names):
            if name not in PERMISSIONS:
                raise t.err(f"permissions[{i}]", unknown_permission(name))
            if name in first:
                raise t.err(f"permissions[{i}]", f"\"{name}\" is listed twice (also permissions[{first[name]}])")
            first[name] = i
        out[pid] = SecurityProfile(pid, t.get("name", str, None) or pid, frozenset(names))
        t.finish()
    return out


def agent_profiles(t: TomlTable, routing: dict[str, RoutingProfile],
                   security: dict[str, SecurityProfile]) -> tuple[str, str]:
    """An `[[agents]]` table's (routing_profile, security_profile) ids, checked against the profiles."""
    for plural, singular in (("routing_profiles", "routing_profile"), ("security_profiles", "security_profile")):
        if plural in t.data:
            raise t.err(plural, f"an agent has exactly one: write {singular} = \"<id>\"")
    rp = t.get("routing_profile", str, DEFAULT_ROUTING_PROFILE)
    if rp not in routing:
        raise t.err("routing_profile", _known("routing profile", rp, routing))
    sp = t.get("security_profile", str, DEFAULT_SECURITY_PROFILE)
    if sp not in security:
        raise t.err("security_profile", _known("security profile", sp, security))
    return rp, sp
