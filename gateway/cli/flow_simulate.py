"""`callgate flow simulate`: rehearse a flow with a scripted caller and print the path it takes."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path


def add_parser(fsub) -> None:
    p = fsub.add_parser("simulate", help="rehearse a flow without a phone: the actions, prompts and branches a call would take")
    p.add_argument("flow", help="flow JSON file")
    p.add_argument("--caller", default="+15555550100", help="the caller's number ($.CustomerEndpoint.Address)")
    p.add_argument("--number", default="+15555550000", help="the number called ($.SystemEndpoint.Address)")
    p.add_argument("--digits", default="", help="keys the caller presses in order, comma-separated; an empty "
                   "entry lets the input time out (e.g. 1,,#)")
    p.add_argument("--at", help="date and time of the call, ISO 8601 (local time unless an offset is given)")
    p.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE", help="contact attribute (repeatable)")
    p.add_argument("--queue-full", action="append", default=[], metavar="QUEUE", help="treat this queue as at capacity")
    p.add_argument("--config", metavar="CALLGATE_TOML", help="take hours of operation, queues and webhooks from this "
                   "gateway config (a naive --at is then in the hours' time zone)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME=VALUE",
                   help="a queue metric for CheckMetricData/GetMetricData, e.g. NumberOfAgentsAvailable=2 "
                   "(repeatable; others are 0)")
    p.add_argument("--webhook-reply", metavar="FILE", help="JSON every webhook replies with (nothing is sent)")
    p.add_argument("--call-webhooks", action="store_true", help="really POST to the webhook URLs of --config "
                   "(without it and without --webhook-reply, webhooks take their Error branch)")
    p.add_argument("--hang-up-after", type=int, metavar="N", help="the caller hangs up at their Nth interaction "
                   "(1 = the first prompt, key wait, queue or message), to rehearse hang-ups and the disconnect flow")
    p.add_argument("--transfer-outcome", choices=("answered", "busy", "no_answer"), default="answered",
                   help="what a number a transfer to a phone number dials does (default: answers, talks and "
                   "hangs up first)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from gateway.flows.simulate import rehearse
    from gateway.flows.validate import FlowInvalid
    try:
        at = _parse_at(args.at) if args.at else None
        attrs = _parse_attrs(args.attr)
    except ValueError as exc:
        print(f"callgate flow simulate: {exc}", file=sys.stderr)
        return 2
    try:
        setting, schedule = _setting(args)
    except ValueError as exc:
        print(f"callgate flow simulate: {exc}", file=sys.stderr)
        return 2
    if args.at and schedule is not None and dt.datetime.fromisoformat(args.at).tzinfo is None:
        at = schedule.epoch(args.at)
        if not args.json:
            print(f"time: {schedule.local(at):%a %Y-%m-%d %H:%M} {schedule.time_zone} (the zone of the [[hours]])")
    from gateway.flows.library import FlowLibrary
    library = FlowLibrary([Path(args.flow).parent])  # the flows beside it, for TransferToFlow and event hooks
    library.refresh()
    try:
        flow = library.load(args.flow)
    except FlowInvalid as exc:
        print(f"callgate flow simulate: {args.flow} is not valid:\n{exc}", file=sys.stderr)
        return 1
    digits = [d.strip() for d in args.digits.split(",")] if args.digits else []
    bad = [d for d in digits if d and (len(d) != 1 or d not in "0123456789*#ABCD")]
    if bad:
        print(f"callgate flow simulate: --digits: {bad[0]!r} is not a key (0-9, *, #, A-D)", file=sys.stderr)
        return 2
    rehearsal = asyncio.run(rehearse(flow, caller=args.caller, system_number=args.number, digits=digits,
                                     setting=setting,
                                     at=at, attributes=attrs, full_queues=set(args.queue_full),
                                     library=library.current, transfer_outcome=args.transfer_outcome,
                                     hang_up_after=args.hang_up_after))
    if args.json:
        from gateway.cli.output import emit_json
        emit_json({"flow": str(Path(args.flow)), **rehearsal.as_dict()})
    else:
        _print(rehearsal, at)
    return 0 if rehearsal.result.outcome != "error" else 1


def _print(rehearsal, at: float | None) -> None:
    start = rehearsal.steps[0][0].at if rehearsal.steps else 0.0
    for n, (step, events) in enumerate(rehearsal.steps, 1):
        offset = step.at - start
        hook = f"  <{rehearsal.hooks[n - 1]} flow>" if n - 1 in rehearsal.hooks else ""
        print(f"{n:>3}. +{offset:6.1f}s  {step.identifier}  [{step.type}]{hook}")
        for event in events:
            print(f"          {event.text}")
        why = f"  ({step.detail})" if step.detail else ""
        print(f"          -> {step.branch}{why}")
    print(f"end: {rehearsal.ending}")
    if rehearsal.attributes:
        print("attributes: " + ", ".join(f"{k}={v}" for k, v in sorted(rehearsal.attributes.items())))
    if rehearsal.digits_left:
        print(f"note: keys never read: {','.join(rehearsal.digits_left)}")


def _parse_at(text: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at {text!r}: expected ISO 8601 such as 2026-12-24T18:30 or 2026-12-24T18:30+01:00") from None
    return when.timestamp()  # naive times are local to this machine


def _setting(args):
    """The rehearsal's Setting from --config, --metric and the webhook flags, and the schedule whose time
    zone a naive --at is in (the zone all [[hours]] share; None without --config or with several zones)."""
    from gateway.flows.simulate import METRIC_NAMES, Setting
    setting = Setting()
    for pair in args.metric:
        name, sep, value = pair.partition("=")
        if not sep or name.strip() not in METRIC_NAMES:
            raise ValueError(f"--metric {pair!r}: expected NAME=VALUE with NAME one of {', '.join(METRIC_NAMES)}")
        try:
            setting.metrics[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--metric {pair!r}: {value!r} is not a number") from None
    if args.webhook_reply:
        try:
            setting.webhook_reply = Path(args.webhook_reply).read_bytes()
        except OSError as exc:
            raise ValueError(f"--webhook-reply {args.webhook_reply}: {exc.strerror or exc}") from None
    if args.call_webhooks and not args.config:
        raise ValueError("--call-webhooks needs --config (the webhook URLs are in its [webhooks] table)")
    if not args.config:
        return setting, None
    from gateway.center.queues import resolve_queue_ref
    from gateway.config import ConfigError, load_config
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise ValueError(f"--config: {exc}") from None
    names = {q.id: q.name for q in cfg.queues}
    setting.hours, setting.queue_hours, setting.webhooks = cfg.hours, cfg.queue_hours, cfg.webhooks

    def resolve(ref: str) -> tuple[str, str] | None:
        queue_id = resolve_queue_ref(ref, cfg.queues)
        return (queue_id, names[queue_id]) if queue_id else None

    setting.resolve_queue = resolve
    if args.call_webhooks:
        from gateway.transport.http_client import post_json
        setting.webhook_post = post_json
    zones = {h.time_zone: h for h in cfg.hours.values()}
    return setting, (next(iter(zones.values())) if len(zones) == 1 else None)


def _parse_attrs(pairs: list[str]) -> dict[str, str]:
    attrs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--attr {pair!r}: expected KEY=VALUE")
        attrs[key.strip()] = value
    return attrs
