"""Security: routing and security profiles in the config (every mistake placed), the permission and
ownership checks on every agent command, the audit log (lines, rotation, `callgate audit`), and the
daemon refusing an agent's commands over MQTT with the missing permission named."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.api.admin import AdminError, AdminHandler, Operation
from gateway.api.commands import CommandHandler
from gateway.api.topics import Topics
from gateway.center.agents import AgentConfig
from gateway.center.audit import AuditLog, audit_files, read_audit, rotated
from gateway.center.passwords import hash_password
from gateway.center.queues import QueueConfig, WaitingContact
from gateway.center.router import Center
from gateway.center.routing_profiles import RoutingProfile, RoutingQueue
from gateway.center.security import (BUILTIN_SECURITY_PROFILES, COMMAND_PERMISSIONS, PERMISSIONS,
                                     SecurityProfile)
from gateway.cli.main import main as cli_main
from gateway.clock import ManualClock
from gateway.config import ConfigError, load_config
from tests.stack import AgentClient, DEMO_FLOW, Stack, free_port, start_daemon, stop_daemon, wait_ready, write_config
from hil.sim7600 import Sim7600Emulator

HASH = hash_password("pw", iterations=1000)

# --- the config ------------------------------------------------------------------------------------

BASE = f'''
[[queues]]
id = "support"
name = "Support"

[[queues]]
id = "sales"
name = "Sales"
'''


def agent(agent_id: str, **keys: str) -> str:
    extra = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
    return f'\n[[agents]]\nid = "{agent_id}"\npassword_hash = "{HASH}"\n{extra}'


def load(tmp_path: Path, text: str):
    path = tmp_path / "callgate.toml"
    path.write_text(BASE + text)
    return load_config(path)


def test_profiles_parse_and_agents_default_to_the_builtins(tmp_path):
    cfg = load(tmp_path, '''
[[routing_profiles]]
id = "front"
name = "Front desk"
default_outbound_queue = "sales"
queues = [{queue = "support", priority = 1, delay = 0}, {queue = "sales", priority = 2, delay = 30}]

[[routing_profiles]]
id = "sales_only"
queues = [{queue = "sales"}]

[[security_profiles]]
id = "trainee"
name = "Trainee"
permissions = ["take_calls"]

[[security_profiles]]
id = "agent"
permissions = ["take_calls", "transfer"]
''' + agent("alice", routing_profile="front", security_profile="trainee") + agent("bob")
        + agent("sue", security_profile="supervisor"))
    front = cfg.routing_profiles["front"]
    assert front == RoutingProfile("front", "Front desk", (RoutingQueue("support", 1, 0.0), RoutingQueue("sales", 2, 30.0)),
                                   "sales")
    assert cfg.routing_profiles["sales_only"].default_outbound_queue == "sales"    # its first queue
    assert cfg.routing_profiles["sales_only"].entry("sales") == RoutingQueue("sales", 1, 0.0)
    assert cfg.routing_profiles["sales_only"].entry("support") is None
    default = cfg.routing_profiles["default"]      # built in: every queue, priority 1, no delay
    assert default.queues == (RoutingQueue("support"), RoutingQueue("sales")) and default.default_outbound_queue == "support"

    assert cfg.security_profiles["trainee"] == SecurityProfile("trainee", "Trainee", frozenset({"take_calls"}))
    assert cfg.security_profiles["agent"].permissions == {"take_calls", "transfer"}    # the file's wins
    assert cfg.security_profiles["admin"].permissions == set(PERMISSIONS)
    assert "change_flows_config" not in cfg.security_profiles["supervisor"].permissions
    assert [(a.id, a.routing_profile, a.security_profile) for a in cfg.agents] == [
        ("alice", "front", "trainee"), ("bob", "default", "agent"), ("sue", "default", "supervisor")]

    center = Center(cfg.queues, cfg.agents, clock=ManualClock(), routing_profiles=cfg.routing_profiles,
                    security_profiles=cfg.security_profiles)
    assert center.agent("alice").routing is front
    view = center.agent_view("alice")
    assert (view["routing_profile"], view["security_profile"], view["permissions"]) == ("front", "trainee", ["take_calls"])
    assert center.agent_view("bob")["permissions"] == ["take_calls", "transfer"]


def test_a_config_without_profiles_keeps_working(tmp_path):
    cfg = load(tmp_path, agent("alice"))
    center = Center(cfg.queues, cfg.agents, clock=ManualClock())       # no profiles handed in: the built-ins
    view = center.agent_view("alice")
    assert view["routing_profile"] == "default" and view["security_profile"] == "agent"
    assert view["permissions"] == ["take_calls", "make_outbound_calls", "transfer", "control_recording"]
    assert center.agent("alice").routing.queue_ids == ["support", "sales"]
    with pytest.raises(ValueError, match="agent 'x': no security profile 'nobody'"):
        Center(cfg.queues, [AgentConfig("x", "X", HASH, security_profile="nobody")], clock=ManualClock())


RP = '\n[[routing_profiles]]\nid = "front"\n'
SP = '\n[[security_profiles]]\nid = "trainee"\n'
MISTAKES = {
    "unknown queue": (RP + 'queues = [{queue = "support"}, {queue = "Sales"}]',
                      'routing_profiles[0].queues[1].queue: no queue "Sales" (did you mean "sales"?); queues: sales, support'),
    "queue twice": (RP + 'queues = [{queue = "support"}, {queue = "sales"}, {queue = "support", priority = 3}]',
                    'routing_profiles[0].queues[2].queue: "support" is listed twice in this profile (also queues[0])'),
    "priority 0": (RP + 'queues = [{queue = "support", priority = 0}]',
                   "routing_profiles[0].queues[0].priority: must be 1-99 (1 is served first), got 0"),
    "priority 100": (RP + 'queues = [{queue = "support", priority = 100}]', "queues[0].priority: must be 1-99"),
    "priority text": (RP + 'queues = [{queue = "support", priority = "high"}]',
                      "routing_profiles[0].queues[0].priority: expected int, got str 'high'"),
    "negative delay": (RP + 'queues = [{queue = "sales", delay = -5}]',
                       "routing_profiles[0].queues[0].delay: must be 0-9999 seconds, got -5"),
    "queue key typo": (RP + 'queues = [{queue = "sales", prority = 2}]',
                       "routing_profiles[0].queues[0].prority: unknown key (typo?)"),
    "no queues": (RP, "routing_profiles[0].queues: missing: list the queues this profile serves"),
    "empty queues": (RP + "queues = []", "routing_profiles[0].queues: empty: a routing profile serves at least one queue"),
    "queues as names": (RP + 'queues = ["support"]',
                        "routing_profiles[0].queues[0]: expected a table like {queue = \"support\", priority = 1, delay = 0}"),
    "outbound queue": (RP + 'queues = [{queue = "support"}]\ndefault_outbound_queue = "suport"',
                       'routing_profiles[0].default_outbound_queue: no queue "suport" (did you mean "support"?)'),
    "profile id twice": (RP + 'queues = [{queue = "support"}]' + RP + 'queues = [{queue = "sales"}]',
                         'routing_profiles[1].id: "front" is used twice (also routing_profiles[0])'),
    "bad profile id": ('\n[[routing_profiles]]\nid = "front desk"\nqueues = [{queue = "support"}]',
                       "routing_profiles[0].id: must be 1-64 letters, digits, '-' or '_'"),
    "unknown permission": (SP + 'permissions = ["take_calls", "listen_recording"]',
                           'security_profiles[0].permissions[1]: "listen_recording" is not a permission '
                           '(did you mean "listen_recordings"?); permissions: take_calls, make_outbound_calls'),
    "permission twice": (SP + 'permissions = ["transfer", "take_calls", "transfer"]',
                         'security_profiles[0].permissions[2]: "transfer" is listed twice (also permissions[0])'),
    "permissions missing": (SP, "security_profiles[0].permissions: missing: list what this profile may do"),
    "permissions not strings": (SP + "permissions = [1]", "security_profiles[0].permissions: expected a list of strings"),
    "security id twice": (SP + "permissions = []" + SP + "permissions = []",
                          'security_profiles[1].id: "trainee" is used twice (also security_profiles[0])'),
    "agent routing profile": (agent("alice", routing_profile="defualt"),
                              'agents[0].routing_profile: no routing profile "defualt" (did you mean "default"?); '
                              "routing profiles: default"),
    "agent security profile": (agent("alice", security_profile="supervsor"),
                               'agents[0].security_profile: no security profile "supervsor" (did you mean "supervisor"?); '
                               "security profiles: admin, agent, supervisor"),
    "agent with two profiles": (agent("alice") + 'security_profiles = ["agent", "admin"]',
                                'agents[0].security_profiles: an agent has exactly one: write security_profile = "<id>"'),
    "agent profile list": (agent("alice") + 'routing_profile = ["default"]',
                           "agents[0].routing_profile: expected str, got list"),
    "plain password": ('\n[[agents]]\nid = "alice"\npassword_hash = "hunter2"',
                       "agents[0].password_hash: must be a salted hash"),
}


@pytest.mark.parametrize("case", MISTAKES)
def test_each_config_mistake_is_refused_with_its_place(tmp_path, case):
    text, expected = MISTAKES[case]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'callgate.toml'}: "), message
    assert expected in message, message


def test_the_model_refuses_what_the_config_would(tmp_path):
    with pytest.raises(ValueError, match="priority must be 1-99"):
        RoutingQueue("support", priority=0)
    with pytest.raises(ValueError, match="listed twice"):
        RoutingProfile("p", "P", (RoutingQueue("a"), RoutingQueue("a")))
    with pytest.raises(ValueError, match='"take_call" is not a permission'):
        SecurityProfile("p", "P", frozenset({"take_call"}))


# --- permission and ownership checks -----------------------------------------------------------------

PROFILES = {**BUILTIN_SECURITY_PROFILES,
            "nothing": SecurityProfile("nothing", "Nothing", frozenset()),
            "trainee": SecurityProfile("trainee", "Trainee", frozenset({"take_calls"}))}
AGENTS = {"alice": "agent", "bob": "agent", "carol": "nothing", "tina": "trainee", "sue": "supervisor"}


class Rig:
    """The real CommandHandler, Center and AuditLog; the gateway side of calls is `calls`."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock()
        agents = [AgentConfig(a, a.title(), HASH, security_profile=p) for a, p in AGENTS.items()]
        self.center = Center([QueueConfig("support", "Support"), QueueConfig("sales", "Sales")], agents,
                             clock=self.clock, security_profiles=PROFILES)
        self.audit_path = tmp_path / "audit.log"
        self.audit = AuditLog(self.audit_path, clock=self.clock)
        self.sent: list[tuple[str, dict]] = []
        self.calls: dict[str, str] = {}
        self.hung_up: list[tuple[str, str]] = []
        self.dialled: list[tuple[str, dict]] = []
        self.transferred: list[tuple[str, str, dict]] = []
        self.handler = CommandHandler(
            lambda t, p: self.sent.append((t, json.loads(p))), Topics("gw"), self.center,
            on_hangup=lambda a, c: self.hung_up.append((a, c)),
            on_recording=lambda c, pause: self.calls.setdefault(c, "recording") and
            self.calls.__setitem__(c, "paused" if pause else "recording") or self.calls[c],
            on_dial=lambda a, cmd: self.dialled.append((a, cmd)) or {"contact_id": "out-1"},
            on_transfer=lambda a, c, cmd: self.transferred.append((a, c, cmd)) or {"contact_id": c},
            audit=self.audit)
        self.n = 0

    def send(self, agent_id: str, **command) -> dict:
        self.n += 1
        command.setdefault("id", f"r{self.n}")
        self.handler.handle(f"callgate/gw/agent/{agent_id}/cmd", json.dumps(command).encode())
        topic, reply = self.sent[-1]
        assert topic == f"callgate/gw/agent/{agent_id}/reply"
        assert reply["id"] == command["id"]
        return reply

    def login(self, *agent_ids: str) -> None:
        for a in agent_ids:
            reply = self.send(a, action="login", password="pw")
            assert reply["ok"], reply

    def enqueue(self, contact_id: str, queue: str = "support") -> None:
        contact = WaitingContact(contact_id, "+15550100", "gsm1", queue, self.clock.monotonic(), self.clock.time())
        assert self.center.enqueue(contact) == "queued"

    def connect(self, agent_id: str, contact_id: str) -> None:
        """`agent_id` takes `contact_id`: only it is Available when the contact arrives."""
        assert self.send(agent_id, action="available")["ok"]
        self.enqueue(contact_id)
        assert self.center.offer_view(agent_id)["contact_id"] == contact_id
        assert self.send(agent_id, action="accept", contact_id=contact_id)["ok"]

    def audit_entries(self) -> list[dict]:
        return list(read_audit(self.audit_path))


# action -> (fields, the permission it needs)
PROTECTED = {
    "available": ({}, "take_calls"),
    "accept": ({"contact_id": "c-1"}, "take_calls"),
    "reject": ({"contact_id": "c-1"}, "take_calls"),
    "pause_recording": ({"contact_id": "c-1"}, "control_recording"),
    "resume_recording": ({"contact_id": "c-1"}, "control_recording"),
    "dial": ({"number": "+15550199"}, "make_outbound_calls"),
    "transfer": ({"contact_id": "c-1", "to_queue": "sales"}, "transfer"),
}


def test_every_protected_command_is_in_the_table_and_the_table_knows_every_command():
    from gateway.api.commands import ACTIONS
    assert set(COMMAND_PERMISSIONS) == set(ACTIONS)
    assert {a for a, p in COMMAND_PERMISSIONS.items() if p} == set(PROTECTED)
    assert {p for _, p in PROTECTED.values()} <= set(PERMISSIONS)


@pytest.mark.parametrize("action", PROTECTED)
def test_a_command_the_profile_does_not_allow_is_refused_naming_the_permission(tmp_path, action):
    fields, permission = PROTECTED[action]
    rig = Rig(tmp_path)
    rig.login("carol")
    reply = rig.send("carol", id="x1", action=action, **fields)
    assert reply == {"id": "x1", "ok": False, "action": action, "code": "forbidden",
                     "missing_permission": permission,
                     "error": f"agent carol's security profile 'nothing' lacks the {permission} permission "
                              f"({PERMISSIONS[permission]}), which {action} needs"}
    assert rig.center.agent_view("carol")["state"] == "Offline"
    assert not rig.dialled and not rig.transferred and not rig.calls
    last = rig.audit_entries()[-1]
    assert {k: last.get(k) for k in ("source", "actor", "agent", "action", "result", "code", "missing_permission")} == {
        "source": "agent", "actor": "carol", "agent": "carol", "action": action, "result": "refused",
        "code": "forbidden", "missing_permission": permission}
    assert permission in last["reason"]


def test_the_same_commands_pass_with_the_permission(tmp_path):
    rig = Rig(tmp_path)
    rig.login("alice", "tina")
    rig.connect("tina", "c-0")                                      # take_calls is all a trainee has
    assert rig.send("tina", action="pause_recording", contact_id="c-0")["missing_permission"] == "control_recording"
    assert rig.send("tina", action="dial", number="+15550199")["missing_permission"] == "make_outbound_calls"
    assert rig.send("tina", action="transfer", contact_id="c-0", to_agent="alice")["missing_permission"] == "transfer"
    assert rig.send("tina", action="hangup")["ok"] and rig.hung_up == [("tina", "c-0")]

    rig.connect("alice", "c-1")
    assert rig.send("alice", action="pause_recording", contact_id="c-1")["recording"] == "paused"
    assert rig.send("alice", action="resume_recording", contact_id="c-1")["recording"] == "recording"
    assert rig.send("alice", action="transfer", contact_id="c-1", to_queue="sales")["ok"]
    assert rig.transferred == [("alice", "c-1", {"id": rig.transferred[0][2]["id"], "action": "transfer",
                                                 "contact_id": "c-1", "to_queue": "sales"})]
    assert rig.send("alice", action="dial", number="+15550199", queue="sales")["contact_id"] == "out-1"
    assert rig.dialled[0][0] == "alice" and rig.dialled[0][1]["queue"] == "sales"


def test_commands_that_need_no_permission_and_the_login_reply(tmp_path):
    rig = Rig(tmp_path)
    reply = rig.send("carol", action="login", password="pw")
    assert reply == {"id": reply["id"], "ok": True, "action": "login", "state": "Offline", "routing_profile": "default",
                     "security_profile": "nothing", "permissions": []}
    assert rig.send("tina", action="login", password="pw")["permissions"] == ["take_calls"]
    assert rig.send("carol", action="offline")["ok"]
    assert rig.send("carol", action="hangup")["code"] == "not_on_call"         # no permission needed: not on a call
    assert rig.send("carol", action="logout")["ok"]


def test_a_signed_out_agent_learns_nothing_about_its_permissions(tmp_path):
    rig = Rig(tmp_path)
    reply = rig.send("carol", action="pause_recording", contact_id="c-1")
    assert reply["code"] == "not_logged_in" and "missing_permission" not in reply
    wrong = rig.send("carol", action="login", password="nope")
    assert wrong["code"] == "bad_credentials"
    entries = rig.audit_entries()
    assert [e["code"] for e in entries] == ["not_logged_in", "bad_credentials"]
    assert "nope" not in rig.audit_path.read_text()                          # no password is ever written


def test_commands_for_another_agent_need_manage_agents(tmp_path):
    rig = Rig(tmp_path)
    rig.login("alice", "bob", "sue")
    assert rig.send("alice", action="available")["ok"]

    forged = rig.send("bob", action="offline", agent="alice")
    assert forged["code"] == "forbidden" and forged["missing_permission"] == "manage_agents"
    assert "agent bob's security profile 'agent' lacks the manage_agents permission" in forged["error"]
    assert rig.center.agent_view("alice")["state"] == "Available"

    forged_accept = rig.send("bob", action="accept", contact_id="c-1", agent="alice")
    assert forged_accept["code"] == "wrong_agent" and "only available, offline, logout" in forged_accept["error"]
    assert rig.send("bob", action="login", password="pw", agent="alice")["code"] == "wrong_agent"

    done = rig.send("sue", action="offline", agent="alice")                  # a supervisor may
    assert done["ok"] and rig.center.agent_view("alice")["state"] == "Offline"
    assert rig.send("sue", action="available", agent="carol")["code"] == "not_logged_in"
    rig.login("carol")
    refused = rig.send("sue", action="available", agent="carol")             # carol herself lacks take_calls
    assert refused["missing_permission"] == "take_calls" and "agent carol's security profile" in refused["error"]
    assert rig.send("sue", action="logout", agent="mallory")["code"] == "unknown_agent"

    entries = rig.audit_entries()
    by_sue = [e for e in entries if e["actor"] == "sue" and e["action"] == "offline"]
    assert by_sue and by_sue[0]["agent"] == "alice" and by_sue[0]["result"] == "ok"
    assert [e["result"] for e in entries if e["actor"] == "bob" and e.get("agent") == "alice"] == ["refused"] * 3


def test_another_agents_contact_is_never_yours(tmp_path):
    rig = Rig(tmp_path)
    rig.login("alice", "bob")
    assert rig.send("alice", action="available")["ok"]
    rig.enqueue("c-1")
    assert rig.center.offer_view("alice")["contact_id"] == "c-1"

    for action in ("accept", "reject"):
        reply = rig.send("bob", action=action, contact_id="c-1")
        assert reply["code"] == "not_your_contact" and reply["error"] == "contact c-1 is offered to another agent, not to bob"
    assert rig.center.offer_view("alice")["contact_id"] == "c-1"             # alice's offer is untouched

    assert rig.send("alice", action="accept", contact_id="c-1")["ok"]
    rig.connect("bob", "c-2")
    for action, extra in (("pause_recording", {}), ("resume_recording", {}), ("hangup", {}),
                          ("transfer", {"to_queue": "sales"})):
        reply = rig.send("bob", action=action, contact_id="c-1", **extra)
        assert reply["code"] == "not_your_contact", (action, reply)
        assert reply["error"] == "contact c-1 is not agent bob's call (it is on call with c-2)"
    assert rig.calls == {} and rig.hung_up == [] and rig.transferred == []
    assert rig.send("bob", action="hangup", contact_id="c-9")["code"] == "not_your_contact"   # not a call at all
    assert rig.hung_up == []
    assert rig.send("bob", action="hangup", contact_id="c-2")["ok"] and rig.hung_up == [("bob", "c-2")]

    refused = [e for e in rig.audit_entries() if e.get("code") == "not_your_contact"]
    assert len(refused) == 7 and all(e["actor"] == "bob" and e["result"] == "refused" for e in refused)
    assert {e["queue"] for e in refused if e["contact_id"] == "c-1"} == {"support"}


def test_a_malformed_command_or_a_stranger_is_audited_too(tmp_path):
    rig = Rig(tmp_path)
    rig.handler.handle("callgate/gw/agent/alice/cmd", b"{not json")
    rig.handler.handle("callgate/gw/agent/mallory/cmd", json.dumps({"action": "login", "password": "x"}).encode())
    rig.send("alice", action="transfer", contact_id="c-1")                   # neither to_queue nor to_agent
    bad, stranger, transfer = rig.audit_entries()
    assert bad["actor"] == "alice" and bad["code"] == "bad_request" and "action" not in bad
    assert stranger["actor"] == "mallory" and stranger["code"] == "unknown_agent" and stranger["action"] == "login"
    assert transfer["code"] == "bad_request" and "exactly one of $.to_queue and $.to_agent" in transfer["reason"]
    assert rig.sent[1][0] == "callgate/gw/errors"


def test_dial_and_transfer_without_an_implementation_say_so(tmp_path):
    rig = Rig(tmp_path)
    rig.handler = CommandHandler(lambda t, p: rig.sent.append((t, json.loads(p))), Topics("gw"), rig.center,
                                 on_hangup=lambda a, c: None)
    rig.login("alice")
    assert rig.send("alice", action="dial", number="+15550199")["code"] == "not_supported"


# --- the audit log -------------------------------------------------------------------------------------

def test_audit_lines_are_whole_json_objects_with_the_time(tmp_path):
    rig = Rig(tmp_path)
    rig.login("alice")
    rig.clock.advance(60.0)
    rig.connect("alice", "c-1")
    lines = rig.audit_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["action"] for e in entries] == ["login", "available", "accept"]
    assert all(e["result"] == "ok" and e["source"] == "agent" for e in entries)
    accept = entries[-1]
    assert accept["contact_id"] == "c-1" and accept["queue"] == "support" and "reason" not in accept
    from datetime import datetime
    assert datetime.fromisoformat(accept["time"]).timestamp() == pytest.approx(rig.clock.time(), abs=0.001)
    assert datetime.fromisoformat(entries[0]["time"]).timestamp() == pytest.approx(rig.clock.time() - 60, abs=0.001)
    assert list(accept)[:5] == ["time", "source", "actor", "agent", "action"]
    assert rig.audit_path.stat().st_mode & 0o007 == 0                            # not world-readable


def test_admin_operations_are_audited(tmp_path):
    audit_path = tmp_path / "audit.log"
    audit = AuditLog(audit_path, clock=ManualClock())
    sent: list[tuple[str, dict]] = []

    async def line_test(command, progress):
        progress("dialing")
        return {"outcome": "answered"}

    async def sms_send(command, progress):
        raise AdminError("unknown_line", f"no line {command['line']}")

    async def scenario():
        tasks = []
        handler = AdminHandler(lambda t, p: sent.append((t, json.loads(p))), Topics("gw"),
                               lambda coro, name: tasks.append(asyncio.ensure_future(coro)),
                               {"line_test": Operation({"line": str, "number": str}, line_test),
                                "sms_send": Operation({"line": str, "number": str, "text": str}, sms_send)},
                               audit=audit)
        handler.handle("callgate/gw/admin/cmd", json.dumps({"id": "t1", "op": "line_test", "line": "gsm1",
                                                            "number": "+15550199"}).encode())
        handler.handle("callgate/gw/admin/cmd", json.dumps({"id": "t2", "op": "sms_send", "line": "gsm9",
                                                            "number": "+15550199", "text": "secret words"}).encode())
        handler.handle("callgate/gw/admin/cmd", json.dumps({"id": "t3", "op": "reboot"}).encode())
        await asyncio.wait_for(asyncio.gather(*tasks), 5)

    asyncio.run(scenario())
    entries = list(read_audit(audit_path))
    assert [(e.get("action"), e["result"], e.get("code")) for e in entries] == [
        (None, "refused", "bad_request"), ("line_test", "ok", None), ("sms_send", "failed", "unknown_line")]
    assert all(e["source"] == "admin" and e["actor"] == "admin" for e in entries)
    assert entries[1]["line"] == "gsm1" and entries[1]["number"] == "+15550199" and entries[1]["request_id"] == "t1"
    assert "secret words" not in audit_path.read_text()
    assert [r["ok"] for t, r in sent if "ok" in r] == [False, True, False]     # replies as before


def test_rotation_keeps_the_newest_lines_in_bounded_files(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path, clock=ManualClock(), max_bytes=2000, keep=2)
    for i in range(200):
        log.record({"source": "agent", "actor": "alice", "action": "available", "request_id": i, "result": "ok"})
    log.close()
    assert audit_files(path) == [rotated(path, 2), rotated(path, 1), path]
    assert not rotated(path, 3).exists()
    assert all(0 < f.stat().st_size <= 2000 for f in audit_files(path))
    ids = [e["request_id"] for e in read_audit(path)]
    assert ids == list(range(ids[0], 200)) and 20 < len(ids) < 60              # the newest, in order, none lost between

    reopened = AuditLog(path, clock=ManualClock(), max_bytes=2000, keep=2)    # a restart appends, then rotates on
    reopened.record({"action": "after_restart"})
    assert list(read_audit(path))[-1]["action"] == "after_restart"


def test_a_log_that_cannot_be_written_costs_lines_not_the_command(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    rig = Rig(tmp_path)
    rig.audit = rig.handler._audit = AuditLog(blocker / "audit.log", clock=rig.clock)
    rig.login("alice")
    assert rig.send("alice", action="available")["ok"]
    assert rig.audit.failures == 2 and rig.audit.written == 0

    path = tmp_path / "torn.log"
    path.write_text('{"action": "a", "result": "ok"}\n{"action": "b", "res')   # cut short by a crash
    assert list(read_audit(path)) == [{"action": "a", "result": "ok"}, None]


def test_callgate_audit_reads_filters_and_prints(tmp_path, capsys):
    rig = Rig(tmp_path)
    rig.login("alice", "carol")
    rig.clock.advance(3600.0)
    rig.send("carol", action="pause_recording", contact_id="c-1")
    rig.send("alice", action="available")
    rig.audit.close()
    rig.audit_path.with_name("audit.log.1").write_text(json.dumps({"time": "2020-01-01T00:00:00+00:00", "source": "agent",
                                                                   "actor": "carol", "action": "login", "result": "ok"}) + "\n")

    def audit(*args: str) -> tuple[int, str, str]:
        code = cli_main(["audit", "--file", str(rig.audit_path), *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = audit("--json")
    assert code == 0 and [e["action"] for e in json.loads(out)] == ["login", "login", "login", "pause_recording",
                                                                    "available"]
    code, out, _ = audit("--json", "--agent", "carol", "--refused")
    refused = json.loads(out)
    assert [(e["action"], e["missing_permission"]) for e in refused] == [("pause_recording", "control_recording")]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(rig.clock.time() - 60))
    code, out, _ = audit("--json", "--since", since)
    assert [e["action"] for e in json.loads(out)] == ["pause_recording", "available"]
    code, out, _ = audit("--json", "--since", "-7d", "--action", "login")     # `-7d` is a value, not an option
    week_ago = time.time() - 7 * 86400
    assert len(json.loads(out)) == (2 if rig.clock.time() - 3600 >= week_ago else 0)
    code, out, _ = audit("--agent", "carol")
    assert code == 0 and out.splitlines()[0].split() == ["TIME", "WHO", "ACTION", "TARGET", "RESULT", "WHY"]
    assert "forbidden" in out and "missing control_recording" in out and "2020-01-01" in out
    code, out, _ = audit("--limit", "1")
    assert len(out.splitlines()) == 3 and "available" in out.splitlines()[2]

    with pytest.raises(SystemExit) as usage:
        audit("--since", "tomorrowish")
    assert usage.value.code == 2 and "cannot read 'tomorrowish' as a time" in capsys.readouterr().err
    assert cli_main(["audit", "--file", str(tmp_path / "none.log")]) == 1
    assert "no audit log yet" in capsys.readouterr().err


# --- through the daemon ----------------------------------------------------------------------------------

TRAINEE = f'''
[[security_profiles]]
id = "trainee"
name = "Trainee"
permissions = ["take_calls"]

[[routing_profiles]]
id = "support_desk"
queues = [{{queue = "support", priority = 1, delay = 0}}]

[[agents]]
id = "tina"
name = "Tina"
password_hash = "{hash_password('tina-pass', iterations=2000)}"
security_profile = "trainee"
routing_profile = "support_desk"
'''


@pytest.fixture
def trainee_stack(tmp_path):
    emulator = Sim7600Emulator(ring_interval=2.0)
    emulator.start()
    data_dir, config, log_path = tmp_path / "data", tmp_path / "callgate.toml", tmp_path / "daemon.log"
    write_config(config, gateway_id=f"gw{free_port()}", data_dir=data_dir, broker=None, web_port=free_port(),
                 lines=[{"id": "gsm1", "profile": "simcom_sim7600", "at_port": emulator.at_port,
                         "audio_port": emulator.audio_port, "flow": str(DEMO_FLOW), "number": "+15550000000"}],
                 extra=TRAINEE)
    proc = start_daemon(config, data_dir, log_path)
    try:
        state = wait_ready(data_dir, proc, log_path)
        yield Stack(emulator=emulator, gateway_id=state["gateway_id"], data_dir=data_dir, config=config, proc=proc,
                    mqtt_host=state["mqtt_host"], mqtt_port=state["mqtt_port"], ws_url=state["ws_url"],
                    dashboard_url=state["dashboard"], log_path=log_path)
    finally:
        stop_daemon(proc)
        emulator.stop()


def test_the_daemon_refuses_a_trainees_commands_over_mqtt(trainee_stack):
    stack, emu = trainee_stack, trainee_stack.emulator
    tina = AgentClient(stack, "tina")
    try:
        login = tina.command("login", password="tina-pass")
        assert login["ok"] and login["permissions"] == ["take_calls"], login
        assert login["security_profile"] == "trainee" and login["routing_profile"] == "support_desk"
        state = tina.wait_for(lambda t, o: t.endswith("/agent/tina/state") and o.get("security_profile") == "trainee")
        assert state["permissions"] == ["take_calls"]
        dial = tina.command("dial", number="+15557654321")
        assert dial["ok"] is False and dial["code"] == "forbidden" and dial["missing_permission"] == "make_outbound_calls"
        assert "make_outbound_calls" in dial["error"]

        assert tina.command("available")["ok"]
        emu.ring("+15551230007")
        assert emu.wait_for_state("active", 10), stack.log()[-3000:]
        deadline = time.monotonic() + 10
        while not emu.pcm_enabled and time.monotonic() < deadline:
            time.sleep(0.05)
        emu.send_dtmf("1")
        offer = tina.wait_for(lambda t, o: t.endswith("/agent/tina/offer"), 15, "offer")
        assert tina.command("accept", contact_id=offer["contact_id"])["ok"]
        pause = tina.command("pause_recording", contact_id=offer["contact_id"])
        assert pause["code"] == "forbidden" and pause["missing_permission"] == "control_recording", pause
        assert tina.command("hangup")["ok"]
        assert emu.wait_for_state("idle", 10)
    finally:
        tina.close()

    entries = json.loads(stack.cli("audit", "--agent", "tina", "--json").stdout)
    assert [(e["action"], e["result"], e.get("missing_permission")) for e in entries] == [
        ("login", "ok", None), ("dial", "refused", "make_outbound_calls"), ("available", "ok", None),
        ("accept", "ok", None), ("pause_recording", "refused", "control_recording"), ("hangup", "ok", None)]
    assert entries[3]["queue"] == "support" and entries[4]["contact_id"] == offer["contact_id"]
    assert (stack.data_dir / "audit.log").exists()


# --- the dashboard hides what the profile does not allow -----------------------------------------------

def test_the_dashboard_hides_buttons_the_agent_may_not_use(tmp_path):
    from gateway.web.server import DashboardServer
    from tests.web_helpers import MqttProbe, chromium_page, make_tone_wav, run_mosquitto

    prefix = "callgate/gwsec/"
    with run_mosquitto(tmp_path) as broker:
        gw = MqttProbe(broker.tcp_port, client_id="fake-gateway")
        gw.subscribe(prefix + "agent/+/cmd")

        def state(**fields) -> None:
            gw.publish(prefix + "agent/tina/state", {"agent": "tina", "name": "Tina", "since": time.time(),
                                                     "offer": None, "contact_id": None, **fields}, retain=True)
        try:
            wav = make_tone_wav(tmp_path / "mic.wav", seconds=5)
            with DashboardServer("127.0.0.1", 0, ws_url=broker.ws_url, gateway_id="gwsec") as srv, \
                    chromium_page(wav) as page:
                page.goto(srv.url)
                page.fill("#agent-id", "tina")
                page.fill("#password", "pw")
                page.click("#login")
                cmd = gw.expect_json(prefix + "agent/tina/cmd")
                gw.publish(prefix + "agent/tina/reply", {"id": cmd["id"], "ok": True, "action": "login",
                                                         "state": "Offline", "permissions": ["control_recording"]})
                page.wait_for_selector("#agent-panel:not([hidden])", timeout=5000)
                assert page.is_hidden("#btn-available") and page.is_visible("#btn-offline")
                assert page.evaluate("window.__cg.permissions()") == ["control_recording"]

                offer = {"contact_id": "c-1", "call_id": "c-1", "caller": "+15550100", "queue": "support",
                         "line": "gsm1", "expires_in": 20.0}
                state(state="Available", offer=offer, permissions=["take_calls"])
                page.wait_for_selector("#offer:not([hidden])", timeout=5000)
                assert page.is_visible("#accept") and page.is_visible("#reject") and page.is_visible("#btn-available")

                state(state="OnCall", contact_id="c-1", permissions=["take_calls"])
                page.wait_for_selector("#call:not([hidden])", timeout=5000)
                assert page.is_hidden("#rec-toggle") and page.is_visible("#hangup")
                state(state="OnCall", contact_id="c-1", permissions=["take_calls", "control_recording"])
                page.wait_for_selector("#rec-toggle:not([hidden])", timeout=5000)
                assert page.cg_errors == []
        finally:
            gw.close()
