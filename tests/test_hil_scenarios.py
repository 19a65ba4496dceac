"""Every HIL scenario (hil/scenarios/) through the emulator of every profile it applies to: identification and
start-up, inbound call with caller ID, answer, a tone each way by FFT, DTMF, hang-ups, outbound outcomes, SMS
both ways on GSM, and the injected faults with the line recovering and another line unaffected. Also: runs
that make no sense are reported as not applicable, bad scenario files are refused with file and key, and the
`callgate hil` command's exit codes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil.runner import NOT_APPLICABLE, PASS, RunResult, run_one
from hil.scenario_file import ScenarioError, find_scenario, load_scenario, load_scenarios
from hil.targets import EmulatorTarget, emulator_plans

REPO = Path(__file__).resolve().parents[1]
PLANS = emulator_plans()
SCENARIOS = {sc.name: sc for sc in load_scenarios()}
# Scenarios that spend 10-25 s of real time (health checks, the recovery ladder) or exercise one mechanism
# the same way on every family run on the profiles named here; every other scenario runs on every profile.
REPRESENTATIVE = {
    "modem_wedged": (),                          # test_other_line_completes_a_call_while_one_is_wedged
    "no_answer_to_command": ("huawei_e17x",),
    "slow_replies": ("simcom_sim800",),
    "garbage_on_at_port": ("huawei_e17x", "v253_usr5637"),
    "registration_lost": ("simcom_sim7600",),
    "modem_replug_by_id": ("simcom_sim7600", "quectel_ec25_uac", "v253_usr5637"),
    # multi-tty modems, where the old names come back as other interfaces, and a single-tty one
    "modem_unplug_replug": ("quectel_ec25", "simcom_sim800"),
    "modem_reset": ("quectel_ec25_uac", "simcom_sim800"),
}


def _report(result: RunResult) -> str:
    lines = [f"{result.scenario} on {result.target}: {result.status} - {result.reason}"]
    lines += [f"  {s.index:>2} {s.status:8} {s.step} ({s.seconds} s) {s.detail}" for s in result.steps]
    lines += [f"  | {t}" for t in result.transcript]
    return "\n".join(lines)


def _matrix():
    for name, sc in sorted(SCENARIOS.items()):
        for pid in PLANS:
            if EmulatorTarget(pid, plans=PLANS).missing(sc.needs):
                continue
            if name in REPRESENTATIVE and pid not in REPRESENTATIVE[name]:
                continue
            yield pytest.param(name, pid, id=f"{name}-{pid}")


def _run(name_or_scenario, profile: str) -> RunResult:
    sc = SCENARIOS[name_or_scenario] if isinstance(name_or_scenario, str) else name_or_scenario
    return asyncio.run(run_one(sc, EmulatorTarget(profile, plans=PLANS)))


@pytest.mark.parametrize("name, profile", list(_matrix()))
def test_scenario_passes_on_the_emulated_profile(name, profile):
    result = _run(name, profile)
    assert result.status == PASS, _report(result)
    assert all(s.status == PASS for s in result.steps) and len(result.steps) >= len(SCENARIOS[name].steps)


def test_every_profile_has_an_emulator_and_every_scenario_runs_somewhere():
    from gateway.modem.profile import load_profiles
    assert {p.id for p in load_profiles()} <= set(PLANS)
    ran = {param.values[0] for param in _matrix()} | {"modem_wedged"}
    assert ran == set(SCENARIOS)


def test_other_line_completes_a_call_while_one_is_wedged():
    result = _run("modem_wedged", "huawei_e17x")
    assert result.status == PASS, _report(result)
    witness = next(s for s in result.steps if s.step.startswith("witness call"))
    assert "witness call done" in witness.detail
    # the witness call ran entirely while the wedged line was down
    assert "'idle'" not in witness.detail and ("recovering" in witness.detail or "failed" in witness.detail)


def test_a_scenario_that_makes_no_sense_is_reported_not_applicable_with_the_reason():
    for name, profile, lacking in (("sms_send", "v253_usr5637", "sms"), ("registration_lost", "v253_conexant",
                                                                          "registration"),
                                   ("modem_wedged", "v253_conexant", "wedge")):
        result = _run(name, profile)
        assert result.status == NOT_APPLICABLE and lacking in result.reason and profile in result.reason
        assert result.steps == []


def test_a_failing_expectation_fails_the_run_names_the_step_and_shows_the_transcript(tmp_path):
    bad = tmp_path / "wrong_digits.toml"
    bad.write_text('[scenario]\ntitle = "t"\nproves = "p"\n'
                   '[[steps]]\nfar = "ring"\ncaller = "{far_number}"\n'
                   '[[steps]]\nexpect = "incoming"\nnumber = "{far_number}"\n'
                   '[[steps]]\nline = "answer"\n'
                   '[[steps]]\nfar = "send_dtmf"\ndigits = "12"\n'
                   '[[steps]]\nexpect = "dtmf"\ndigits = "21"\nwithin = 2\n'
                   '[[steps]]\nfar = "hangup"\n', encoding="utf-8")
    result = _run(load_scenario(bad), "simcom_sim7600")
    assert result.status == "fail"
    assert "step 7 (expect dtmf digits=21)" in result.reason and "'12'" in result.reason
    assert [s.status for s in result.steps][-2:] == ["fail", "not run"]
    assert any("ATA" in line for line in result.transcript)


@pytest.mark.parametrize("text, where", [
    ('[scenario]\ntitle = "t"\nproves = "p"\n[[steps]]\nfar = "outcome"\noutcome = "bussy"\n',
     "steps[0].outcome: 'bussy' is not one of answer, busy, no_answer, reject"),
    ('[scenario]\ntitle = "t"\nproves = "p"\n[[steps]]\nexpect = "dtmf"\ndigits = "1"\nwithn = 3\n',
     "steps[0].withn: unknown key"),
    ('[scenario]\ntitle = "t"\nproves = "p"\n[[steps]]\nfar = "ring"\nline = "answer"\n',
     "steps[0]: a step has exactly one of far, line, expect, witness, wait (got far, line)"),
    ('[scenario]\ntitle = "t"\nproves = "p"\n[[steps]]\nfar = "ring"\ncaller = "{far_numbr}"\n',
     "steps[0].caller: unknown placeholder {far_numbr}"),
    ('[scenario]\ntitle = "t"\nproves = "p"\nneeds = ["fax"]\n[[steps]]\nline = "answer"\n',
     "scenario.needs[0]: 'fax' is not one of"),
    ('[scenario]\ntitle = "t"\n[[steps]]\nline = "answer"\n', "scenario.proves: missing"),
    ('[scenario]\ntitle = "t"\nproves = "p"\n[[steps]]\nline = "play_tone"\nfreq = 5000\n',
     "steps[0].freq: a tone must lie between 50 and 3800 Hz"),
    ('[scenario\n', "bad.toml: "),
])
def test_a_bad_scenario_file_is_refused_naming_the_file_and_the_key(tmp_path, text, where):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith("bad.toml: ") and where in str(err.value), str(err.value)


def _callgate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    entry = "import sys; from gateway.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", entry, "hil", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_callgate_hil_list_run_and_exit_codes(tmp_path):
    listed = _callgate("list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["scenario"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == set(SCENARIOS)
    assert "v253_usr5637" in rows["sms_receive"]["not_applicable"] and "simcom_sim800" in rows["sms_receive"]["profiles"]

    ran = _callgate("run", "outbound_busy,sms_send", "--profile", "huawei_e17x,v253_conexant")
    out = ran.stdout
    assert ran.returncode == 0, out + ran.stderr
    assert "[ 3/7] PASS  far outcome outcome=busy" in out and "outcome busy" in out
    table = out[out.index("SCENARIO"):]
    assert "outbound_busy  huawei_e17x    PASS" in table and "sms_send       v253_conexant  NOT APPLICABLE" in table

    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\ntitle = "t"\nproves = "p"\n[[steps]]\nexpect = "ended"\n', encoding="utf-8")
    refused = _callgate("run", str(bad), "--profile", "simcom_sim7600")
    assert refused.returncode == 2 and "bad.toml: steps[0].reason: missing" in refused.stderr
    unknown = _callgate("run", "inbound_caller_id_dtmf", "--profile", "nokia_3310")
    assert unknown.returncode == 2 and "no emulator for profile 'nokia_3310'" in unknown.stderr
    hardware = _callgate("run", "inbound_caller_id_dtmf", "--port", "/dev/ttyUSB2")
    assert hardware.returncode == 2 and "--far-port, --far-number, --line-number" in hardware.stderr

    failing = tmp_path / "never_rings.toml"
    failing.write_text('[scenario]\ntitle = "t"\nproves = "p"\n'
                       '[[steps]]\nexpect = "incoming"\nnumber = "{far_number}"\nwithin = 0.5\n', encoding="utf-8")
    failed = _callgate("run", str(failing), "--profile", "v253_usr5637", "--json")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    (run,) = json.loads(failed.stdout)
    assert run["status"] == "fail" and run["steps"][-1]["detail"] == "not within 0.5 s: no incoming call"


def test_scenario_by_name_or_path_and_unknown_names():
    assert find_scenario("sms_send") == SCENARIOS["sms_send"].path
    with pytest.raises(ScenarioError, match="no scenario 'sms_sent' \\(known: .*sms_send"):
        find_scenario("sms_sent")
