"""Flow pictures: gateway.flows.render through Graphviz's real dot (valid SVG with every action and each
branch labelled, PNG, designer positions, awkward identifiers, the real Connect flows), `callgate flow
render` and its exit codes, and the dashboard's /flows/<line>.svg on the real web server."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gateway.cli.main import main as callgate
from gateway.flows.model import Action, Condition, Flow
from gateway.flows.render import (DotMissing, RenderError, designer_metadata, flow_to_dot,
                                  read_drawable, render, render_file, render_svg, short_ids)
from gateway.flows.validate import FlowInvalid, load_flow
from gateway.web.server import DashboardServer

SVG = "{http://www.w3.org/2000/svg}"
XLINK_TITLE = "{http://www.w3.org/1999/xlink}title"
SLEEP = shutil.which("sleep")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REAL = Path(__file__).parents[2] / "shared" / "flows" / "real"
REAL_FLOWS = sorted(p for p in REAL.glob("*.json") if p.name != "inventory.json") if REAL.is_dir() else []

# Identifiers with quotes, markup characters and non-Latin text: all allowed by Connect and the validator.
GREETING, MENU, SALES, SUPPORT, QUEUE, SORRY, BYE = (
    'say "welcome"', "menü <main> & more", "sales ☎", "サポート", "to-queue", "sorry 'again'", "bye")


def menu_flow_json(greeting: str = "Welcome to the office.") -> str:
    actions = [
        {"Identifier": GREETING, "Type": "MessageParticipant", "Parameters": {"Text": greeting},
         "Transitions": {"NextAction": MENU}},
        {"Identifier": MENU, "Type": "GetParticipantInput",
         "Parameters": {"Text": "Press 1 for sales, 2 for support.", "InputTimeLimitSeconds": "5"},
         "Transitions": {"NextAction": SORRY,
                         "Conditions": [
                             {"NextAction": SALES, "Condition": {"Operator": "Equals", "Operands": ["1"]}},
                             {"NextAction": SUPPORT, "Condition": {"Operator": "Equals", "Operands": ["2"]}}],
                         "Errors": [{"NextAction": SORRY, "ErrorType": "InputTimeLimitExceeded"},
                                    {"NextAction": MENU, "ErrorType": "NoMatchingCondition"},
                                    {"NextAction": BYE, "ErrorType": "NoMatchingError"}]}},
        {"Identifier": SALES, "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "sales"},
         "Transitions": {"NextAction": QUEUE, "Errors": [{"NextAction": BYE, "ErrorType": "NoMatchingError"}]}},
        {"Identifier": SUPPORT, "Type": "UpdateContactTargetQueue", "Parameters": {"QueueId": "support"},
         "Transitions": {"NextAction": QUEUE, "Errors": [{"NextAction": BYE, "ErrorType": "NoMatchingError"}]}},
        {"Identifier": QUEUE, "Type": "TransferContactToQueue", "Parameters": {},
         "Transitions": {"NextAction": BYE, "Errors": [{"NextAction": SORRY, "ErrorType": "QueueAtCapacity"},
                                                       {"NextAction": BYE, "ErrorType": "NoMatchingError"}]}},
        {"Identifier": SORRY, "Type": "MessageParticipant", "Parameters": {"Text": "Sorry, goodbye."},
         "Transitions": {"NextAction": BYE}},
        {"Identifier": BYE, "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}},
    ]
    positions = {GREETING: (0, 0), MENU: (700, 0), SALES: (1400, -400), SUPPORT: (1400, 400),
                 QUEUE: (2100, 0), SORRY: (700, 800), BYE: (2800, 800)}
    meta = {"entryPointPosition": {"x": -300, "y": 0},
            "ActionMetadata": {k: {"position": {"x": x, "y": y}} for k, (x, y) in positions.items()}}
    return json.dumps({"Version": "2019-10-30", "StartAction": GREETING, "Metadata": meta, "Actions": actions},
                      ensure_ascii=False, indent=2)


@pytest.fixture
def menu_file(tmp_path) -> Path:
    path = tmp_path / "office menu.json"
    path.write_text(menu_flow_json(), encoding="utf-8")
    return path


def parse_svg(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    return root


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def node_tooltips(root: ET.Element) -> list[str]:
    """The tooltip of every node: the full action identifier (StartAction for the start marker)."""
    out = []
    for g in groups(root, "node"):
        [link] = [a for a in g.iter(f"{SVG}a") if a.get(XLINK_TITLE) is not None]
        out.append(link.get(XLINK_TITLE))
    return out


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


def node_by_id(root: ET.Element, ident: str) -> ET.Element:
    [node] = [g for g in groups(root, "node")
              if any(a.get(XLINK_TITLE) == ident for a in g.iter(f"{SVG}a"))]
    return node


def edge_labels(root: ET.Element) -> dict[str, ET.Element]:
    """Each edge label line -> the edge that carries it."""
    return {text: g for g in groups(root, "edge") for text in texts(g)}


def centre(node: ET.Element) -> tuple[float, float]:
    """Centre of the node's outline (SVG y grows downwards)."""
    coords = []
    for shape in [*node.iter(f"{SVG}path"), *node.iter(f"{SVG}polygon"), *node.iter(f"{SVG}ellipse")]:
        if shape.tag == f"{SVG}ellipse":
            coords.append((float(shape.get("cx")), float(shape.get("cy"))))
        coords += [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)",
                                                                shape.get("d") or shape.get("points") or "")]
    xs, ys = [x for x, _ in coords], [y for _, y in coords]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2


# ----------------------------------------------------------------------------- the picture

def test_svg_has_every_action_and_each_branch_labelled(menu_file):
    flow = load_flow(menu_file)
    root = parse_svg(render_svg(flow))
    assert sorted(node_tooltips(root)) == sorted([*flow.actions, "StartAction"])

    menu_texts = texts(node_by_id(root, MENU))
    assert menu_texts[:2] == ["GetParticipantInput", MENU]       # short names are shown whole
    assert any("Press 1 for sales" in t for t in menu_texts) and any("timeout 5 s" in t for t in menu_texts)
    assert any("queue support" in t for t in texts(node_by_id(root, SUPPORT)))
    assert any("Welcome to the office." in t for t in texts(node_by_id(root, GREETING)))

    labels = edge_labels(root)
    for label in ("= 1", "= 2", "next", "InputTimeLimitExceeded", "NoMatchingCondition", "NoMatchingError",
                  "QueueAtCapacity"):
        assert label in labels, (label, sorted(labels))
    for error in ("QueueAtCapacity", "InputTimeLimitExceeded"):       # error branches: dashed and red
        [path] = labels[error].iter(f"{SVG}path")
        assert path.get("stroke") == "#dc2626" and path.get("stroke-dasharray")
    [path] = labels["= 1"].iter(f"{SVG}path")
    assert path.get("stroke") == "#1d4ed8" and not path.get("stroke-dasharray")
    # the start marker points at the StartAction
    [start] = [g for g in groups(root, "edge") if "".join(g.find(f"{SVG}title").itertext()).startswith("start")]
    assert "".join(start.find(f"{SVG}title").itertext()) == "start->a0"


def test_terminal_handoff_and_start_are_drawn_apart(menu_file):
    root = parse_svg(render_svg(load_flow(menu_file)))
    [octagon] = node_by_id(root, BYE).iter(f"{SVG}polygon")
    assert len(octagon.get("points").split()) == 9                    # 8 corners, closed
    assert len(list(node_by_id(root, QUEUE).iter(f"{SVG}path"))) == 2   # double border: a hand-off
    assert len(list(node_by_id(root, SORRY).iter(f"{SVG}path"))) == 1   # a plain rounded box
    [circle] = node_by_id(root, "StartAction").iter(f"{SVG}ellipse")
    assert circle.get("fill") == "#166534" and texts(node_by_id(root, "StartAction")) == ["Start"]


def test_unsupported_types_and_missing_targets_are_drawn_and_marked(tmp_path):
    doc = {"Version": "2019-10-30", "StartAction": "lex", "Actions": [
        {"Identifier": "lex", "Type": "ConnectParticipantWithLexBot", "Parameters": {"Text": "How can I help?"},
         "Transitions": {"NextAction": "bye", "Conditions": [
             {"NextAction": "ghost", "Condition": {"Operator": "Equals", "Operands": ["Billing"]}}],
             "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingCondition"}]}},
        {"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}}]}
    path = tmp_path / "lex.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FlowInvalid) as refused:
        read_drawable(path)
    assert any("not supported here: ConnectParticipantWithLexBot" in str(i) for i in refused.value.issues)

    drawable = read_drawable(path, force=True)
    assert drawable.errors and sorted(drawable.flow.actions) == ["bye", "lex"]
    root = parse_svg(render_svg(drawable.flow, issues=drawable.issues))
    assert sorted(node_tooltips(root)) == ["StartAction", "bye", "ghost", "lex"]
    lex = node_by_id(root, "lex")
    assert "not supported here" in texts(lex) and "ConnectParticipantWithLexBot" in texts(lex)
    assert any(p.get("stroke") == "#b91c1c" and p.get("stroke-dasharray") for p in lex.iter(f"{SVG}path"))
    assert "“How can I help?”" in texts(lex)
    ghost = node_by_id(root, "ghost")
    assert texts(ghost) == ["missing action", "ghost"]
    assert "= Billing" in edge_labels(root)


def test_awkward_identifiers_and_text_stay_valid_xml():
    nasty = ['back\\slash"quote', "ctrl\x01char\nnewline", "emoji 🎉 and \\N \\G", "]]>&amp;<!--", "\ud800lone"]
    actions = {ident: Action(ident, "MessageParticipant", {"Text": ident + ' <b>"x"</b>'},
                             next_action=nasty[(i + 1) % len(nasty)],
                             conditions=[Condition("Equals", ['"\\'], nasty[0])],
                             errors={"Err\"or\\": nasty[-1]})
               for i, ident in enumerate(nasty)}
    flow = Flow("2019-10-30", nasty[0], actions, "<test>")
    root = parse_svg(render_svg(flow))
    clean = [ident.replace("\x01", "\ufffd").replace("\ud800", "\ufffd") for ident in nasty]
    assert sorted(node_tooltips(root)) == sorted([*clean, "StartAction"])
    labels = edge_labels(root)
    assert '= "\\' in labels and 'Err"or\\' in labels
    text = "\n".join(texts(root))
    assert 'back\\slash"quote <b>"x"</b>' in text and "emoji 🎉 and \\N \\G" in text and "]]>&amp;<!--" in text


def test_short_identifiers_stay_distinct():
    same_start = [f"e0000001-0000-0000-0000-00000000000{i}" for i in range(3)]
    uuids = ["6f3917a2-61ca-4f51-9bf8-f5e5a483b715", "e05e8fe8-5be4-48ea-86d7-25fdc04165f9"]
    short = short_ids([*same_start, *uuids, "x" * 60, "menu"])
    assert [short[u] for u in uuids] == ["6f3917a2…", "e05e8fe8…"]
    assert [short[u] for u in same_start] == ["…000000000000", "…000000000001", "…000000000002"]
    assert short["menu"] == "menu" and len(short["x" * 60]) == 24 and short["x" * 60].endswith("…")
    assert len(set(short.values())) == len(short)


def test_png_has_the_png_signature(menu_file, tmp_path):
    out = render_file(load_flow(menu_file), tmp_path / "menu.png")
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 200 and height > 200
    assert render(load_flow(menu_file), "png").startswith(PNG_SIGNATURE)


def test_designer_layout_keeps_the_connect_positions(menu_file):
    drawable = read_drawable(menu_file)
    assert drawable.designer.positions[SALES] == (1400.0, -400.0) and drawable.designer.entry == (-300.0, 0.0)
    designed = parse_svg(render_svg(drawable.flow, layout="designer", designer=drawable.designer))
    at = {ident: centre(node_by_id(designed, ident)) for ident in drawable.flow.actions}
    assert at[GREETING][0] < at[MENU][0] < at[SALES][0] < at[QUEUE][0] < at[BYE][0]   # left to right
    assert at[SALES][1] < at[MENU][1] < at[SUPPORT][1] < at[BYE][1]                   # sales above, support below
    assert abs(at[GREETING][1] - at[MENU][1]) < 5 and abs(at[SALES][0] - at[SUPPORT][0]) < 5
    assert centre(node_by_id(designed, "StartAction"))[0] < at[GREETING][0]
    # the dot layout runs top-down from the start instead
    ranked = parse_svg(render_svg(drawable.flow))
    assert centre(node_by_id(ranked, GREETING))[1] < centre(node_by_id(ranked, MENU))[1]
    assert "pos=" not in flow_to_dot(drawable.flow) and "pos=" in flow_to_dot(
        drawable.flow, layout="designer", designer=drawable.designer)


def test_designer_metadata_takes_resource_names_and_skips_junk():
    designer = designer_metadata({"Metadata": {"entryPointPosition": {"x": "1", "y": 2}, "ActionMetadata": {
        "a": {"position": {"x": 1, "y": 2}, "queue": {"id": "arn:x", "text": "BasicQueue"}},
        "b": {"position": {"x": True, "y": 2}, "promptName": "Greeting.wav"},
        "c": "junk"}}})
    assert designer.entry is None and designer.positions == {"a": (1.0, 2.0)}
    assert designer.names == {"a": "BasicQueue", "b": "Greeting.wav"}
    assert designer_metadata([1, 2]).positions == {} and designer_metadata(None).names == {}


def test_missing_dot_and_failing_dot_are_clear_errors(menu_file, monkeypatch, tmp_path):
    flow = load_flow(menu_file)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DotMissing, match="apt-get install graphviz"):
        render_svg(flow)
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: <stdin>: syntax error in line 3' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(RenderError, match=r"Graphviz failed \(exit 1 .*syntax error in line 3"):
        render_svg(flow)
    fake.write_text(f"#!/bin/sh\nexec {SLEEP} 30\n")
    started = time.monotonic()
    with pytest.raises(RenderError, match="did not finish within 0.3 s"):
        render(flow, timeout=0.3)
    assert time.monotonic() - started < 5


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real flow corpus not found at {REAL} (../shared absent)")
def test_every_real_flow_language_file_renders():
    drawn, slowest = 0, (0.0, "")
    for path in REAL_FLOWS:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "Actions" not in doc:            # the three old console exports: refused, nothing to draw
            with pytest.raises(FlowInvalid, match="legacy Amazon Connect console export"):
                read_drawable(path, force=True)
            continue
        drawable = read_drawable(path, force=True)
        started = time.monotonic()
        root = parse_svg(render_svg(drawable.flow, designer=drawable.designer, issues=drawable.issues))
        slowest = max(slowest, (time.monotonic() - started, path.name))
        tooltips = node_tooltips(root)
        assert set(drawable.flow.actions) <= set(tooltips), path.name
        assert len(drawable.flow.actions) == len(doc["Actions"]), path.name
        drawn += 1
    assert drawn == 24
    assert slowest[0] < 10, slowest


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real flow corpus not found at {REAL} (../shared absent)")
def test_largest_real_flow_in_designer_layout():
    path = REAL / "11-gts-main-lex-modules.json"
    drawable = read_drawable(path, force=True)
    assert len(drawable.flow.actions) == 70 and len(drawable.designer.positions) == 70
    root = parse_svg(render_svg(drawable.flow, layout="designer", designer=drawable.designer,
                                issues=drawable.issues))
    assert set(drawable.flow.actions) <= set(node_tooltips(root))
    labels = edge_labels(root)
    assert "NoMatchingError" in labels and any(label.startswith("= ") for label in labels)


# ----------------------------------------------------------------------------- callgate flow render

def test_cli_renders_svg_and_png(menu_file, tmp_path, capsys):
    out = tmp_path / "menu.svg"
    assert callgate(["flow", "render", str(menu_file), "-o", str(out)]) == 0
    assert sorted(node_tooltips(parse_svg(out.read_bytes()))) == sorted(
        [GREETING, MENU, SALES, SUPPORT, QUEUE, SORRY, BYE, "StartAction"])
    assert re.search(r"menu\.svg: SVG of .*office menu\.json \(7 actions; dot layout, \d+\.\d\d s\)",
                     capsys.readouterr().out)

    png = tmp_path / "menu.png"
    assert callgate(["flow", "render", str(menu_file), "-o", str(png), "--layout", "designer", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "png" and report["layout"] == "designer" and report["actions"] == 7
    assert report["valid"] is True and png.read_bytes().startswith(PNG_SIGNATURE)

    explicit = tmp_path / "picture"
    assert callgate(["flow", "render", str(menu_file), "-o", str(explicit), "--format", "png"]) == 0
    assert explicit.read_bytes().startswith(PNG_SIGNATURE)


def test_cli_exit_codes(menu_file, tmp_path, capsys, monkeypatch):
    broken = tmp_path / "broken.json"
    broken.write_text(menu_flow_json().replace('"NextAction": "bye"', '"NextAction": "nowhere"', 1))
    out = tmp_path / "broken.svg"
    assert callgate(["flow", "render", str(broken), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "transition to missing action 'nowhere'" in err and "--force" in err and not out.exists()

    assert callgate(["flow", "render", str(broken), "-o", str(out), "--force"]) == 0
    captured = capsys.readouterr()
    assert "INVALID: 1 error(s)" in captured.out and "missing action 'nowhere'" in captured.err
    assert "nowhere" in node_tooltips(parse_svg(out.read_bytes()))

    syntax = tmp_path / "syntax.json"
    syntax.write_text('{"Version": "2019-10-30",\n  "Actions": [}')
    assert callgate(["flow", "render", str(syntax), "-o", str(out), "--force", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["exit"] == 1 and report["issues"][0]["line"] == 2 and "invalid JSON" in report["error"]

    assert callgate(["flow", "render", str(menu_file), "-o", str(tmp_path / "menu.gif")]) == 2
    assert "name it .svg or .png" in capsys.readouterr().err
    assert callgate(["flow", "render", str(tmp_path / "absent.json"), "-o", str(out)]) == 2
    assert "cannot read file" in capsys.readouterr().err
    assert callgate(["flow", "render", str(menu_file), "-o", str(tmp_path / "no" / "dir.svg")]) == 2
    assert "cannot write" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        callgate(["flow", "render", str(menu_file)])
    assert usage.value.code == 2 and "-o/--output" in capsys.readouterr().err

    monkeypatch.setenv("PATH", str(tmp_path))
    assert callgate(["flow", "render", str(menu_file), "-o", str(tmp_path / "x.svg")]) == 2
    assert "dot command was not found" in capsys.readouterr().err and not (tmp_path / "x.svg").exists()


def test_cli_designer_layout_without_positions_falls_back_to_dot(tmp_path, capsys):
    doc = json.loads(menu_flow_json())
    del doc["Metadata"]
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(doc))
    assert callgate(["flow", "render", str(path), "-o", str(tmp_path / "p.svg"), "--layout", "designer"]) == 0
    captured = capsys.readouterr()
    assert "no designer positions" in captured.err and "dot layout" in captured.out


def test_cli_entry_point_in_a_process(menu_file, tmp_path):
    out = tmp_path / "menu.svg"
    done = subprocess.run([sys.executable, "-m", "gateway", "flow", "render", str(menu_file), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert MENU in node_tooltips(parse_svg(out.read_bytes()))


# ----------------------------------------------------------------------------- the dashboard

def get(server: DashboardServer | int, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    port = server if isinstance(server, int) else server.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def test_dashboard_serves_the_flow_behind_each_line(menu_file, tmp_path, monkeypatch):
    broken = tmp_path / "broken.json"
    broken.write_text(menu_flow_json().replace('"NextAction": "bye"', '"NextAction": "nowhere"', 1))
    other = tmp_path / "other.json"
    other.write_text(menu_flow_json("Hello from line two."))
    loaded = {"gsm 2": load_flow(other)}
    server = DashboardServer("127.0.0.1", 0, ws_url="ws://127.0.0.1:9001/mqtt", gateway_id="gw",
                             flows=lambda: loaded, flow_paths={"gsm1": menu_file, "bad": broken})
    with server:
        status, headers, body = get(server, "/flows/index.json")
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body) == {"lines": [
            {"line": "gsm1", "flow": "office menu.json", "picture": "flows/gsm1.svg"},
            {"line": "bad", "flow": "broken.json", "picture": "flows/bad.svg"},
            {"line": "gsm 2", "flow": "other.json", "picture": "flows/gsm%202.svg"}]}

        status, headers, body = get(server, "/flows/gsm1.svg")
        assert status == 200 and headers["content-type"] == "image/svg+xml"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert sorted(node_tooltips(parse_svg(body))) == sorted(
            [GREETING, MENU, SALES, SUPPORT, QUEUE, SORRY, BYE, "StartAction"])
        assert get(server, "/flows/gsm1.svg")[2] == body                      # drawn once, kept
        status, headers, head_body = get(server, "/flows/gsm1.svg", method="HEAD")
        assert status == 200 and head_body == b"" and int(headers["content-length"]) == len(body)

        status, _, body = get(server, "/flows/gsm%202.svg")                # the daemon's loaded flow
        assert status == 200 and any("Hello from line two." in t for t in texts(parse_svg(body)))

        menu_file.write_text(menu_flow_json("Changed greeting."), encoding="utf-8")
        status, _, body = get(server, "/flows/gsm1.svg")                    # a changed file is drawn anew
        assert status == 200 and any("Changed greeting." in t for t in texts(parse_svg(body)))

        status, headers, body = get(server, "/flows/bad.svg")
        assert status == 422 and headers["content-type"].startswith("text/plain")
        assert b"its flow is invalid" in body and b"transition to missing action 'nowhere'" in body
        status, _, body = get(server, "/flows/nope.svg")
        assert status == 404 and b"no line 'nope'" in body
        assert get(server, "/flows/")[0] == 404 and get(server, "/flows/gsm1.png")[0] == 404

        loaded["gsm1"] = load_flow(other)                                  # the daemon's flow wins
        status, _, body = get(server, "/flows/gsm1.svg")
        assert any("Hello from line two." in t for t in texts(parse_svg(body)))
        del loaded["gsm1"]

        monkeypatch.setenv("PATH", str(tmp_path))                         # no Graphviz on this gateway
        menu_file.write_text(menu_flow_json("Yet another greeting."), encoding="utf-8")
        status, headers, body = get(server, "/flows/gsm1.svg")
        assert status == 503 and headers["content-type"].startswith("text/plain")
        assert b"Graphviz" in body and b"apt-get install graphviz" in body


def test_dashboard_module_entry_point_reads_the_config(menu_file, tmp_path):
    config = tmp_path / "callgate.toml"
    config.write_text(f'[[queues]]\nid = "support"\n\n[[lines]]\nid = "gsm1"\nprofile = "simcom_sim7600"\n'
                      f'at_port = "/dev/null"\nflow = "{menu_file.name}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "web", "--ws", "ws://127.0.0.1:9001/", "--port", "0",
                             "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
        status, _, body = get(port, "/flows/index.json")
        assert status == 200 and [e["line"] for e in json.loads(body)["lines"]] == ["gsm1"]
        status, _, body = get(port, "/flows/gsm1.svg")
        assert status == 200 and MENU in node_tooltips(parse_svg(body))
    finally:
        proc.terminate()
        proc.wait(timeout=10)



def test_dashboard_page_shows_the_flow_picture_or_why_not(menu_file, tmp_path, monkeypatch):
    from tests.web_helpers import chromium_page, make_tone_wav

    other = tmp_path / "other.json"
    other.write_text(menu_flow_json("Hello from line two."))
    server = DashboardServer("127.0.0.1", 0, ws_url="ws://127.0.0.1:9001/mqtt", gateway_id="gw",
                             flow_paths={"gsm1": menu_file, "gsm2": other})
    with server, chromium_page(make_tone_wav(tmp_path / "mic.wav", seconds=2)) as page:
        page.goto(server.url)
        page.wait_for_selector("#flows-panel .flow-line", timeout=10_000)
        rows = page.locator("#flows-panel .flow-line")
        assert rows.count() == 2
        assert "office menu.json" in rows.nth(0).inner_text()
        rows.nth(0).get_by_role("button", name="Show flow").click()
        page.wait_for_function(
            "() => { const i = document.querySelector('.flow-line[data-line=\"gsm1\"] img');"
            " return i && i.complete && i.naturalWidth > 200; }", timeout=10_000)

        monkeypatch.setenv("PATH", str(tmp_path))                         # Graphviz gone: say so
        rows.nth(1).get_by_role("button", name="Show flow").click()
        message = page.locator('.flow-line[data-line="gsm2"] .flow-message')
        message.wait_for(timeout=10_000)
        assert "apt-get install graphviz" in message.inner_text()
        assert not [e for e in page.cg_errors if "flows/gsm2.svg" not in e], page.cg_errors
