"""The example flows of examples/: each validates without an issue, rehearses along the path its README
says (`callgate flow simulate` with examples/callgate.toml), and is drawn with every action; the Connect
designer export keeps its Metadata positions; the example webhook server answers the greeting flow."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.cli.main import main as callgate
from gateway.config import load_config
from gateway.flows.render import designer_metadata
from gateway.flows.validate import validate_flow_text

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FLOWS = EXAMPLES / "flows"
CONFIG = "examples/callgate.toml"
ADA = "examples/webhooks/caller-lookup-ada.json"
UNKNOWN = "examples/webhooks/caller-lookup-unknown.json"
EXAMPLE_FLOWS = sorted(FLOWS.glob("*.json"))
SVG = "{http://www.w3.org/2000/svg}"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)  # the README's commands use paths from the repository root


def simulate(capsys, flow: str, *args: str) -> dict:
    """`callgate flow simulate examples/flows/<flow>.json ARGS --json`, run in this process."""
    capsys.readouterr()
    code = callgate(["flow", "simulate", f"examples/flows/{flow}.json", *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def path(run: dict) -> list[tuple[str, str]]:
    """The flow's own steps (not those of a customer queue flow it hands the caller to)."""
    return [(s["id"], s["branch"]) for s in run["steps"] if "hook" not in s]


def step(run: dict, ident: str) -> dict:
    [found] = [s for s in run["steps"] if s["id"] == ident]
    return found


def said(run: dict) -> list[str]:
    return [e["text"] for s in run["steps"] for e in s["events"] if e["kind"] == "prompt"]


# ----------------------------------------------------------------------------- all of them

def test_the_examples_are_there_and_the_config_is_a_valid_gateway_config(capsys):
    assert [p.name for p in EXAMPLE_FLOWS] == ["connect-export.json", "customer-queue.json", "office-menu.json",
                                               "webhook-greeting.json"]
    cfg = load_config(EXAMPLES / "callgate.toml")
    assert sorted(cfg.hours) == ["office"] and cfg.queue_hours == {"sales": "office", "support": "office"}
    assert cfg.webhooks == {"caller-lookup": "http://127.0.0.1:8099/caller"}
    assert [lc.flow for lc in cfg.lines] == [FLOWS / "office-menu.json"]
    assert callgate(["config", "check", "-c", CONFIG]) == 0  # its line's flow included
    assert "valid (1 line(s), 2 queue(s)" in capsys.readouterr().out


@pytest.mark.parametrize("flow_file", EXAMPLE_FLOWS, ids=lambda p: p.stem)
def test_example_validates_without_any_issue(flow_file, capsys):
    flow, issues = validate_flow_text(flow_file.read_text(encoding="utf-8"), str(flow_file))
    assert flow is not None and issues == []
    assert callgate(["flow", "validate", str(flow_file.relative_to(REPO))]) == 0
    assert capsys.readouterr().out.strip() == f"examples/flows/{flow_file.name}: valid ({len(flow.actions)} actions)"


@pytest.mark.parametrize("flow_file", EXAMPLE_FLOWS, ids=lambda p: p.stem)
def test_example_renders_as_svg_with_every_action(flow_file, tmp_path, capsys):
    out = tmp_path / f"{flow_file.stem}.svg"
    assert callgate(["flow", "render", str(flow_file), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] and report["layout"] == "dot" and report["issues"] == []
    root = ET.fromstring(out.read_bytes())
    assert root.tag == f"{SVG}svg"
    drawn = {a.get(XLINK_TITLE) for a in root.iter(f"{SVG}a")}
    identifiers = [a["Identifier"] for a in json.loads(flow_file.read_text(encoding="utf-8"))["Actions"]]
    assert report["actions"] == len(identifiers)
    assert set(identifiers) <= drawn


def test_every_rehearsal_command_of_the_readme_runs(capsys):
    text = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    commands = [shlex.split(line)[1:] for line in text.splitlines()
                if line.startswith(("callgate flow simulate", "callgate flow validate"))]
    assert len(commands) >= 12
    for args in commands:
        if "--call-webhooks" in args:
            continue  # needs the example server: test_example_webhook_server_greets_known_callers
        assert callgate(args) == 0, (args, capsys.readouterr())
        capsys.readouterr()


# ----------------------------------------------------------------------------- office menu

def test_office_menu_in_hours_key_2_goes_to_the_support_queue(capsys):
    run = simulate(capsys, "office-menu", "--config", CONFIG, "--at", "2026-03-10T10:00", "--digits", "2")
    assert path(run) == [("check-hours", "condition:True"), ("menu", "condition:2"), ("support", "next"),
                         ("set-queue", "next"), ("queue-flow", "next"), ("to-queue", "queued")]
    assert "open; closes Tue 2026-03-10 12:30" in step(run, "check-hours")["detail"]
    assert step(run, "queue-flow")["detail"] == "CustomerQueue = customer-queue"
    assert run["outcome"] == "queued" and run["queue"] == "Support" and run["attributes"] == {"queue": "support"}
    assert said(run)[0].startswith("says (en-us): Thank you for calling Example Office. For sales, press 1.")


def test_office_menu_opening_hours_then_sales(capsys):
    run = simulate(capsys, "office-menu", "--config", CONFIG, "--at", "2026-03-10T10:00", "--digits", "3,1")
    assert path(run)[:4] == [("check-hours", "condition:True"), ("menu", "condition:3"),
                             ("opening-hours", "next"), ("menu", "condition:1")]
    assert any("We are open Monday to Thursday from 9 to 5" in s for s in said(run))
    assert run["queue"] == "Sales" and run["attributes"] == {"queue": "sales"}


def test_office_menu_on_a_holiday_takes_a_voicemail(capsys):
    run = simulate(capsys, "office-menu", "--config", CONFIG, "--at", "2026-12-24T10:00")
    assert path(run) == [("check-hours", "condition:False"), ("closed", "next"), ("voicemail", "next"),
                         ("thanks", "next"), ("goodbye", "disconnected")]
    assert "closed (Christmas Eve)" in step(run, "check-hours")["detail"]
    assert any(e["kind"] == "voicemail" for e in step(run, "voicemail")["events"])
    # the same weekday and hour a week before is open: the holiday override closed it
    week_before = simulate(capsys, "office-menu", "--config", CONFIG, "--at", "2026-12-17T10:00", "--digits", "2")
    assert path(week_before)[0] == ("check-hours", "condition:True") and week_before["outcome"] == "queued"


@pytest.mark.parametrize("at", ["2026-03-14T11:00", "2026-03-10T18:30", "2026-03-10T12:45"],
                         ids=["saturday", "evening", "lunch"])
def test_office_menu_out_of_hours(at, capsys):
    run = simulate(capsys, "office-menu", "--config", CONFIG, "--at", at)
    assert [i for i, _ in path(run)] == ["check-hours", "closed", "voicemail", "thanks", "goodbye"]


def test_office_menu_silent_caller_is_asked_three_times_then_queued_for_support(capsys):
    run = simulate(capsys, "office-menu", "--config", CONFIG, "--at", "2026-03-10T10:00")
    assert path(run) == [("check-hours", "condition:True"),
                         ("menu", "InputTimeLimitExceeded"), ("menu-again", "condition:ContinueLooping"),
                         ("menu", "InputTimeLimitExceeded"), ("menu-again", "condition:ContinueLooping"),
                         ("menu", "InputTimeLimitExceeded"), ("menu-again", "condition:DoneLooping"),
                         ("support", "next"), ("set-queue", "next"), ("queue-flow", "next"), ("to-queue", "queued")]


def test_office_menu_wrong_key_and_full_queue_end_in_voicemail(capsys):
    run = simulate(capsys, "office-menu", "--config", CONFIG, "--at", "2026-03-10T10:00", "--digits", "9,2",
                   "--queue-full", "Support")
    assert path(run) == [("check-hours", "condition:True"), ("menu", "NoMatchingCondition"),
                         ("not-an-option", "next"), ("menu-again", "condition:ContinueLooping"),
                         ("menu", "condition:2"), ("support", "next"), ("set-queue", "next"), ("queue-flow", "next"),
                         ("to-queue", "QueueAtCapacity"), ("all-busy", "next"), ("voicemail", "next"),
                         ("thanks", "next"), ("goodbye", "disconnected")]


def test_office_menu_without_hours_configured_still_answers(capsys):
    run = simulate(capsys, "office-menu", "--digits", "1")
    assert path(run)[:2] == [("check-hours", "NoMatchingError"), ("menu", "condition:1")]
    assert step(run, "check-hours")["detail"] == 'no [[hours]] named "office" (hours: none defined)'
    assert run["outcome"] == "queued" and run["queue"] == "sales"


# ----------------------------------------------------------------------------- customer queue

QUEUE_ARGS = ("--config", CONFIG, "--attr", "queue=support")


def test_customer_queue_announces_and_stores_the_callback_number(capsys):
    run = simulate(capsys, "customer-queue", *QUEUE_ARGS, "--metric", "NumberOfContactsInQueue=3",
                   "--metric", "OldestContactInQueueAgeSeconds=140", "--digits", "1,0,3,0,1,2,3,4,5,6,7,#")
    assert path(run) == [("metrics", "next"), ("position", "next"),
                         ("wait-time", "condition:NumberGreaterThan 60000"), ("wait-minutes", "next"),
                         ("offer", "condition:1"), ("ask-number", "next"), ("set-callback", "next"),
                         ("note-callback", "next"), ("leave-callback", "next"), ("confirm", "next"),
                         ("goodbye", "disconnected")]
    spoken = said(run)
    assert spoken[0] == "says (en-us): You are waiting for Support. 3 callers are waiting, including you."
    assert spoken[1] == "says (en-us): The wait is a few minutes."
    assert step(run, "ask-number")["detail"] == "stored '+49301234567' from '0301234567' (ended by #)"
    assert step(run, "set-callback")["detail"] == "+49301234567"
    [left] = [e["text"] for e in step(run, "leave-callback")["events"] if e["kind"] == "queue"]
    assert left == ("a callback to +49301234567 will wait in queue Support once the call has ended and 30 s have "
                    "passed (3 attempt(s), 300 s apart)")
    assert run["attributes"] == {"queue": "support", "callback_number": "+49301234567", "callback_requested": "true"}
    assert spoken[-1].endswith("We will call you back at + 4 9 3 0 1 2 3 4 5 6 7. Goodbye.")


@pytest.mark.parametrize("oldest, branch, words", [
    ("20", "NoMatchingCondition", "in about a minute"),
    ("400", "condition:NumberGreaterThan 300000", "more than five minutes"),
])
def test_customer_queue_wait_estimate(oldest, branch, words, capsys):
    run = simulate(capsys, "customer-queue", *QUEUE_ARGS, "--metric", f"OldestContactInQueueAgeSeconds={oldest}",
                   "--digits", "1,0,3,0,1,2,3,4,5,6,7,#")
    assert step(run, "wait-time")["branch"] == branch
    assert words in said(run)[1]


def test_customer_queue_bad_number_is_asked_again_then_back_to_waiting(capsys):
    run = simulate(capsys, "customer-queue", *QUEUE_ARGS, "--digits", "1,1,1,2,#,1,2,#")
    ids = [i for i, _ in path(run)]
    assert path(run)[4:10] == [("offer", "condition:1"), ("ask-number", "InvalidPhoneNumber"),
                               ("bad-number", "next"), ("number-again", "condition:ContinueLooping"),
                               ("ask-number", "InvalidPhoneNumber"), ("bad-number", "next")]
    assert path(run)[10] == ("number-again", "condition:DoneLooping") and ids[11] == "keep-waiting"
    assert "callback_number" not in run["attributes"]


def test_customer_queue_caller_who_waits_hears_the_announcements_each_round(capsys):
    run = simulate(capsys, "customer-queue", *QUEUE_ARGS, "--metric", "NumberOfContactsInQueue=2")
    rounds = [s for s in run["steps"] if s["id"] == "keep-waiting"]
    assert [s["branch"] for s in rounds] == ["condition:ContinueLooping"] * 3
    assert [i for i, _ in path(run)].count("position") == 4
    assert run["outcome"] == "hung_up"  # the rehearsal caller hangs up after three silences


def test_customer_queue_without_a_queue_skips_the_announcements(capsys):
    run = simulate(capsys, "customer-queue", "--digits", "5")
    assert path(run)[:2] == [("metrics", "NoMatchingError"), ("offer", "NoMatchingCondition")]
    assert run["steps"][0]["detail"] == "QueueId '$.Attributes.queue' is empty"


# ----------------------------------------------------------------------------- webhook greeting

def test_webhook_greeting_greets_a_known_caller_by_name(capsys):
    run = simulate(capsys, "webhook-greeting", "--config", CONFIG, "--webhook-reply", ADA, "--caller", "+4930123456")
    assert path(run) == [("lookup", "next"), ("known", "condition:true"), ("greet-by-name", "next"),
                         ("remember-name", "next"), ("vip", "condition:true"), ("first-in-line", "next"),
                         ("set-queue", "next"), ("to-queue", "queued")]
    assert said(run) == ["says (en-us): Hello Ada, welcome back to Example Office."]
    [post] = [e["text"] for e in step(run, "lookup")["events"] if e["kind"] == "webhook"]
    assert post.startswith('POST http://127.0.0.1:8099/caller with {"number": "+4930123456"')
    assert run["attributes"] == {"customer_name": "Ada", "customer_id": "C-1815"}
    assert step(run, "first-in-line")["detail"] == "queue priority 1" and run["queue"] == "Support"


@pytest.mark.parametrize("reply, first", [(UNKNOWN, ("lookup", "next")), (None, ("lookup", "NoMatchingError"))],
                         ids=["unknown-caller", "webhook-fails"])
def test_webhook_greeting_unknown_caller_or_failure_hears_the_plain_greeting(reply, first, capsys):
    run = simulate(capsys, "webhook-greeting", "--config", CONFIG, *(["--webhook-reply", reply] if reply else []))
    expected = [first] + ([("known", "NoMatchingCondition")] if reply else [])
    assert path(run) == expected + [("greet-caller", "next"), ("set-queue", "next"), ("to-queue", "queued")]
    assert said(run) == ["says (en-us): Hello, and welcome to Example Office."]
    assert run["attributes"] == {}


def test_example_webhook_server_greets_known_callers(tmp_path, capsys):
    server = subprocess.Popen([sys.executable, "examples/webhooks/caller_lookup.py", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        line = server.stdout.readline()
        url = re.fullmatch(r"caller lookup on (http://127\.0\.0\.1:\d+/caller)\n", line).group(1)
        config = tmp_path / "callgate.toml"
        config.write_text((EXAMPLES / "callgate.toml").read_text(encoding="utf-8")
                          .replace("http://127.0.0.1:8099/caller", url)
                          .replace('flow = "flows/', f'flow = "{FLOWS}/'), encoding="utf-8")
        ada = simulate(capsys, "webhook-greeting", "--config", str(config), "--call-webhooks",
                       "--caller", "+4930123456")
        grace = simulate(capsys, "webhook-greeting", "--config", str(config), "--call-webhooks",
                         "--caller", "+4989555010")
        stranger = simulate(capsys, "webhook-greeting", "--config", str(config), "--call-webhooks",
                            "--caller", "+4940111222")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert said(ada) == ["says (en-us): Hello Ada, welcome back to Example Office."]
    assert "first-in-line" in [i for i, _ in path(ada)]
    assert said(grace) == ["says (en-us): Hello Grace, welcome back to Example Office."]
    assert ("vip", "NoMatchingCondition") in path(grace) and grace["attributes"]["customer_id"] == "C-1906"
    assert path(stranger)[:2] == [("lookup", "next"), ("known", "NoMatchingCondition")]


# ----------------------------------------------------------------------------- Connect designer export

EXPORT = FLOWS / "connect-export.json"


def test_connect_export_has_the_designer_shape_and_keeps_its_positions():
    doc = json.loads(EXPORT.read_text(encoding="utf-8"))
    meta = doc["Metadata"]
    assert {"entryPointPosition", "ActionMetadata", "Annotations", "name", "description", "type", "status",
            "hash", "snapToGrid"} <= set(meta)
    identifiers = [a["Identifier"] for a in doc["Actions"]]
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", i) for i in identifiers)
    designer = designer_metadata(doc)
    assert set(designer.positions) == set(identifiers)
    assert designer.entry == (20.0, 40.0)
    for ident in identifiers:
        position = meta["ActionMetadata"][ident]["position"]
        assert designer.positions[ident] == (position["x"], position["y"])
    assert sorted(designer.names.values()) == ["Sales", "Support"]  # the queues' display names


def _centres(svg: bytes) -> dict[str, tuple[float, float]]:
    """Each node's centre in the SVG, by its tooltip (the full action identifier)."""
    root = ET.fromstring(svg)
    centres = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") != "node":
            continue
        [ident] = {a.get(XLINK_TITLE) for a in g.iter(f"{SVG}a") if a.get(XLINK_TITLE)}
        points = []
        for shape in g.iter():
            if shape.tag in (f"{SVG}polygon", f"{SVG}path"):
                points += [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)",
                                                                        shape.get("points") or shape.get("d") or "")]
            elif shape.tag == f"{SVG}ellipse":
                points.append((float(shape.get("cx")), float(shape.get("cy"))))
        xs, ys = [x for x, _ in points], [y for _, y in points]
        centres[ident] = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2)
    return centres


def test_connect_export_is_drawn_where_the_designer_put_it(tmp_path, capsys):
    out = tmp_path / "export.svg"
    assert callgate(["flow", "render", str(EXPORT), "-o", str(out), "--layout", "designer", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layout"] == "designer" and report["actions"] == 13 and report["valid"]
    positions = designer_metadata(json.loads(EXPORT.read_text(encoding="utf-8"))).positions
    drawn = _centres(out.read_bytes())
    assert set(positions) <= set(drawn)
    for a in positions:
        for b in positions:
            (ax, ay), (bx, by) = positions[a], positions[b]
            if bx - ax >= 200:
                assert drawn[a][0] < drawn[b][0], (a, b)   # left of it in the designer: left of it here
            if by - ay >= 200:
                assert drawn[a][1] < drawn[b][1], (a, b)   # above it in the designer: above it here
    assert drawn["StartAction"][0] < min(x for x, _ in (drawn[i] for i in positions))


def test_connect_export_runs_with_queue_arns_and_the_working_queue_hours(capsys):
    staffed = simulate(capsys, "connect-export", "--config", CONFIG, "--at", "2026-03-10T10:00", "--digits", "2",
                       "--metric", "NumberOfAgentsStaffed=1")
    branches = [b for _, b in path(staffed)]
    assert branches == ["next", "next", "next", "condition:2", "next", "condition:True",
                        "condition:NumberGreaterThan 0", "queued"]
    assert staffed["queue"] == "Sales" and 'hours "office"' in staffed["steps"][5]["detail"]
    assert staffed["steps"][1]["detail"] == "voice Joanna: espeak-ng en-us"
    nobody = simulate(capsys, "connect-export", "--config", CONFIG, "--at", "2026-03-10T10:00", "--digits", "1")
    assert [b for _, b in path(nobody)][-3:] == ["NoMatchingCondition", "next", "disconnected"]
    assert said(nobody)[-1] == "says (en-us): Nobody is at work in this team right now. Please call again later."
    closed = simulate(capsys, "connect-export", "--config", CONFIG, "--at", "2026-12-25T10:00", "--digits", "1")
    assert [b for _, b in path(closed)][5:] == ["condition:False", "next", "disconnected"]


# ----------------------------------------------------------------------------- docs/flows.md

def test_flow_docs_list_every_supported_type_and_only_unsupported_ones_as_not_supported():
    from gateway.flows.validate import SUPPORTED_TYPES
    text = (REPO / "docs" / "flows.md").read_text(encoding="utf-8")
    supported_part = text[text.index("## Supported actions"):text.index("## References")]
    rows = set(re.findall(r"^\| `([A-Za-z.]+)`", supported_part, re.M))
    assert rows == set(SUPPORTED_TYPES)
    refused_part = text[text.index("## Not supported, and why"):text.index("## Validation")]
    first_cells = [line.split("|")[1] for line in refused_part.splitlines() if line.startswith("| ")]
    named = {t for cell in first_cells for t in re.findall(r"`([A-Za-z]+)`", cell)}
    assert {"ConnectParticipantWithLexBot", "UpdateContactMediaStreamingBehavior"} <= named
    assert not named & SUPPORTED_TYPES, "a type the docs call unsupported is supported now: move its row"
