"""Routing decision time of the Center with 50 agents and 200 waiting contacts, on a hand-advanced clock.

The Center is the real one (gateway/center/router.py) with 5 queues and 5 routing profiles of 2-4
queues each (priorities 1-3, delays 0-60 s); 200 contacts wait, spread over the queues, with ages of
0-300 s and a few with a flow's priority 1. Measured, each as p50 / p99 / max of many runs:

- one decision: 45 agents are on calls, one agent of a given profile goes Available and gets its
  offer (set_available: the command, the routing pass and its events), then goes Offline again
  (which hands the contact back); the five profiles in turn;
- a tick with nothing to offer: no agent free (the Center ticks 5 times a second);
- a tick where one agent is free but every contact its profile serves is still within the delay
  (every waiting contact of its queues is looked at);
- a full dispatch: 50 agents Available, 200 contacts become eligible at one tick (their delays
  pass), and that tick makes 50 offers; with no subscriber, and with the MQTT state publisher
  subscribed (publishing to a list, in an event loop as in the daemon: the agent views of every
  event, and the real-time metrics once on the loop's next turn).

    .venv/bin/python bench/bench_routing.py [--decisions 2000] [--dispatches 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, percentile, table  # noqa: E402
from gateway.api.publisher import StatePublisher  # noqa: E402
from gateway.api.topics import Topics  # noqa: E402
from gateway.center.agents import AgentConfig  # noqa: E402
from gateway.center.passwords import hash_password  # noqa: E402
from gateway.center.queues import QueueConfig, WaitingContact  # noqa: E402
from gateway.center.router import Center  # noqa: E402
from gateway.center.routing_profiles import RoutingProfile, RoutingQueue  # noqa: E402
from gateway.clock import ManualClock  # noqa: E402

AGENTS = 50
CONTACTS = 200
QUEUES = [f"q{i}" for i in range(1, 6)]
HASH = hash_password("pw", iterations=1000)
# profile -> (queue, priority, delay); every profile's smallest delay is >= 10 s for the full dispatch
PROFILES = {
    "p1": [("q1", 1, 10), ("q2", 2, 30)],
    "p2": [("q2", 1, 10), ("q3", 1, 20), ("q1", 2, 60)],
    "p3": [("q3", 1, 10), ("q4", 2, 10), ("q5", 3, 45)],
    "p4": [("q4", 1, 15), ("q5", 1, 10), ("q1", 3, 30), ("q2", 3, 30)],
    "p5": [("q5", 1, 10), ("q1", 2, 20), ("q3", 2, 40)],
}


def build(rng: random.Random, *, delays: bool = True) -> tuple[Center, ManualClock]:
    clock = ManualClock()
    queues = [QueueConfig(q, q.upper(), max_contacts=1000, offer_timeout=20.0) for q in QUEUES]
    profiles = {pid: RoutingProfile(pid, pid, tuple(RoutingQueue(q, p, d if delays else 0) for q, p, d in entries))
                for pid, entries in PROFILES.items()}
    pids = list(PROFILES)
    agents = [AgentConfig(f"a{i:02d}", f"Agent {i}", HASH, routing_profile=pids[i % len(pids)])
              for i in range(AGENTS)]
    center = Center(queues, agents, clock=clock, routing_profiles=profiles)
    for a in agents:
        center.login(a.id, "pw")
    return center, clock


def enqueue(center: Center, clock: ManualClock, rng: random.Random, n: int, prefix: str,
            ages: tuple[float, float]) -> None:
    for i in range(n):
        age = rng.uniform(*ages)
        contact = WaitingContact(f"{prefix}{i}", f"+1555{i:07d}", "gsm1", rng.choice(QUEUES), clock.monotonic() - age,
                                 clock.time() - age, priority=1 if rng.random() < 0.1 else 5)
        assert center.enqueue(contact) == "queued"


def stats_us(samples: list[float]) -> list:
    us = [s * 1e6 for s in samples]
    return [percentile(us, 50), percentile(us, 99), max(us)]


def one_decision(runs: int, rng: random.Random) -> dict:
    center, clock = build(rng)
    ids = center.agent_ids
    cyclers = ids[:5]                      # one agent of each profile
    busy = ids[5:]
    for agent_id in busy:                  # 45 agents take a call each
        queue = center.agent(agent_id).routing.queues[0].queue
        contact = WaitingContact(f"busy-{agent_id}", "+15550000", "gsm1", queue, clock.monotonic() - 100,
                                 clock.time() - 100)
        center.enqueue(contact)
        center.set_available(agent_id)
        center.accept(agent_id, contact.contact_id)
    enqueue(center, clock, rng, CONTACTS, "c-", (0.0, 300.0))
    assert center.queue_view("q1")["depth"] + sum(center.queue_view(q)["depth"] for q in QUEUES[1:]) == CONTACTS
    samples, offered = [], 0
    for n in range(runs):
        agent_id = cyclers[n % len(cyclers)]
        t0 = time.perf_counter()
        center.set_available(agent_id)
        samples.append(time.perf_counter() - t0)
        offered += center.offer_view(agent_id) is not None
        center.set_offline(agent_id)
        clock.advance(0.001)
    assert offered == runs, f"{runs - offered} decisions made no offer"

    ticks = []
    for _ in range(runs):
        t0 = time.perf_counter()
        center.tick()
        ticks.append(time.perf_counter() - t0)
    return {"decision": samples, "idle_tick": ticks}


def gated_tick(runs: int, rng: random.Random) -> list[float]:
    """One free agent whose queues hold only contacts younger than its delays."""
    center, clock = build(rng)
    enqueue(center, clock, rng, CONTACTS, "c-", (0.0, 9.0))   # every delay is >= 10 s
    center.set_available(center.agent_ids[0])
    assert center.offer_view(center.agent_ids[0]) is None
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        center.tick()
        samples.append(time.perf_counter() - t0)
    return samples


def full_dispatch(runs: int, rng: random.Random, *, publisher: bool) -> list[float]:
    """With the publisher, inside an event loop as in the daemon: the tick, then the loop turn in which
    the publisher sends the real-time metrics once for the whole tick."""
    async def one() -> float:
        center, clock = build(rng)
        published = []
        if publisher:
            StatePublisher(lambda topic, payload, **kw: published.append(topic) or True, Topics("bench"), center,
                           clock=clock)
        for agent_id in center.agent_ids:
            center.set_available(agent_id)
            clock.advance(0.01)
        enqueue(center, clock, rng, CONTACTS, "c-", (0.0, 9.0))
        assert all(center.offer_view(a) is None for a in center.agent_ids)
        clock.advance(300.0)
        await asyncio.sleep(0)
        published.clear()
        t0 = time.perf_counter()
        center.tick()
        await asyncio.sleep(0)
        took = time.perf_counter() - t0
        offers = sum(center.offer_view(a) is not None for a in center.agent_ids)
        assert offers == AGENTS, f"full dispatch made {offers} offers"
        if publisher:
            assert published.count("callgate/bench/metrics") == 1, published.count("callgate/bench/metrics")
        return took

    return [asyncio.run(one()) for _ in range(runs)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=2000, help="single decisions and idle ticks (default 2000)")
    ap.add_argument("--dispatches", type=int, default=50, help="full dispatches (default 50)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    single = one_decision(args.decisions, rng)
    results = {
        "one decision (set_available -> 1 offer)": single["decision"],
        "tick, no agent free": single["idle_tick"],
        "tick, 1 agent free, all within delay": gated_tick(args.decisions, rng),
        "full dispatch: 50 offers in one tick": full_dispatch(args.dispatches, rng, publisher=False),
        "full dispatch + MQTT state publisher": full_dispatch(args.dispatches, rng, publisher=True),
    }
    out = {"machine": machine(), "agents": AGENTS, "contacts": CONTACTS, "queues": len(QUEUES),
           "profiles": len(PROFILES),
           "results_us": {name: dict(zip(("p50", "p99", "max"), stats_us(s)), runs=len(s))
                          for name, s in results.items()}}
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    m = out["machine"]
    print(f"routing: {AGENTS} agents, {CONTACTS} waiting contacts, {len(QUEUES)} queues, {len(PROFILES)} routing "
          f"profiles; {m['cpu_model']} ({m['cores']} cores), Python {m['python']}, load {m['loadavg']}")
    rows = [[name, *stats_us(s), str(len(s))] for name, s in results.items()]
    print(table(rows, ["microseconds", "p50", "p99", "max", "runs"]))
    per_offer = [s / AGENTS * 1e6 for s in results["full dispatch: 50 offers in one tick"]]
    print(f"full dispatch per offer: p50 {percentile(per_offer, 50):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
