"""Modem profiles are data: the shipped SIM7600 file loads, and every malformed profile is refused
with the file and the key that is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.modem.profile import ProfileError, load_profile, load_profile_file, load_profiles

SHIPPED = Path(__file__).resolve().parents[1] / "firmware_config" / "simcom_sim7600.toml"


def test_shipped_profiles_load_and_identify_the_sim7600():
    profiles = {p.id: p for p in load_profiles()}
    p = profiles["simcom_sim7600"]
    assert p.matches("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H")
    assert not p.matches("Quectel", "EC25")
    assert p.audio.enable_when == "on_active" and p.audio.frame_bytes == 320
    assert (p.usb[0].vid, p.usb[0].pid, p.usb[0].at_interface, p.usb[0].audio_interface) == ("1e0e", "9001", 2, 4)
    assert "+RXDTMF:" in p.urc_prefixes and "ATE0" in p.init_required


def test_dtmf_decoding_follows_the_profile():
    p = load_profile("simcom_sim7600")
    assert [p.dtmf.decode(line) for line in ("+RXDTMF: 8", "+RXDTMF: *", "+DTMF: #", "+RXDTMF: 12", "RING")] == \
        ["8", "*", "#", None, None]


def variant(tmp_path: Path, old: str, new: str, name: str = "simcom_sim7600") -> Path:
    text = SHIPPED.read_text()
    assert re.search(old, text, re.M), old
    path = tmp_path / f"{name}.toml"
    path.write_text(re.sub(old, new, text, count=1, flags=re.M))
    return path


@pytest.mark.parametrize("old, new, message", [
    (r'^enable_when = "on_active"', 'enable_when = "later"',
     "audio.enable_when: 'later' is not one of pre_answer, post_answer, on_active"),
    (r"^frame_bytes = 320", "frame_bytes = 300", "audio.frame_bytes: 300 does not match 8000 Hz s16le 20 ms"),
    (r"^answer = 10.0", 'answer = "ten"', "timeouts.answer: expected float, got str 'ten'"),
    (r"^answer = 10.0", "answer = 0", "timeouts.answer: must be greater than 0"),
    (r'^hangup = "AT\+CHUP"\n', "", "calls.hangup: missing"),
    (r'^model = ".*"', 'model = "SIM7[56"', "identify.model: bad regular expression"),
    (r'^encoding = "char"', 'encoding = "char"\nencodng = "ascii_code"', "dtmf.events[0].encodng: unknown key (typo?)"),
    (r'^at_interface = 2', 'at_interface = "2"', "identify.usb[0].at_interface: expected int"),
    (r'^required = \[', 'required = [1, ', "init.required: expected a list of strings"),
    (r'^\[dtmf\]', '[dtmf', "Expected ']' at the end of a table declaration (at line"),
])
def test_malformed_profiles_name_file_and_key(tmp_path, old, new, message):
    path = variant(tmp_path, old, new)
    with pytest.raises(ProfileError) as exc:
        load_profile_file(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert message in str(exc.value)


def test_profile_id_must_match_its_file_name(tmp_path):
    path = variant(tmp_path, r"^\[profile\]", "[profile]", name="copy")
    with pytest.raises(ProfileError, match=r"profile.id: 'simcom_sim7600' must equal the file name 'copy'"):
        load_profile_file(path)


def test_unknown_profile_lists_the_known_ones(tmp_path):
    (tmp_path / "simcom_sim7600.toml").write_text(SHIPPED.read_text())
    with pytest.raises(ProfileError, match=r"no such modem profile \(known: simcom_sim7600\)"):
        load_profile("nokia3310", tmp_path)
    assert load_profile("simcom_sim7600", tmp_path).id == "simcom_sim7600"


# --- every family's lines, from the transcripts in shared/docs/modems.md §8 -------------------------

@pytest.mark.parametrize("profile_id, line, expected", [
    ("simcom_sim7600", '+CLCC: 4,1,4,0,0,"08020866256",128', ("call_state", "incoming", "08020866256")),
    ("simcom_sim7600", '+CLCC: 1,0,0,1,0,"",128', ("call_state", "ignore", None)),      # LTE packet pseudo-call
    ("simcom_sim7600", '+CLCC: 1,0,6,0,0,"123",129,""', ("call_state", "released", "123")),
    ("simcom_sim7600", "VOICE CALL: END: 000008", ("ended", None, None)),
    ("simcom_sim7600", "+RXDTMF: *", ("dtmf", "*", None)),
    ("quectel_ec25", '+QIND: "ccinfo",2,1,4,0,0,"02154450290",129', ("call_state", "incoming", "02154450290")),
    ("quectel_ec25", '+QIND: "ccinfo",2,1,-1,0,0,"02154450290",129', ("call_state", "released", "02154450290")),
    ("quectel_ec25", "^DSCI: 2,0,7,0,+48123456789,145", ("call_state", "alerting", "+48123456789")),
    ("quectel_ec25", "^DSCI: 4,1,3,0,+48123456789,145", ("call_state", "active", "+48123456789")),
    ("quectel_ec25", "+QTONEDET: 49", ("dtmf", "1", None)),
    ("quectel_ec25", "+QTONEDET: 35", ("dtmf", "#", None)),
    ("huawei_e17x", "^ORIG:1,0", ("dialing", None, None)),
    ("huawei_e17x", "^CONF:1", ("alerting", None, None)),
    ("huawei_e17x", "^CONN:1,0", ("active", None, None)),
    ("huawei_e17x", "^CEND:1,0,104,17", ("ended", "busy", None)),
    ("huawei_e17x", "^CEND:1,5,29,16", ("ended", None, None)),
    ("huawei_e17x", "^CEND:1,0,104", ("ended", None, None)),                          # cause missing
    ("huawei_e17x", "^DDTMF: 8", ("dtmf", "8", None)),
    ("huawei_e17x", "^RSSI:15", ("signal", 15, None)),
    ("simcom_sim800", "MO RING", ("alerting", None, None)),
    ("simcom_sim800", "MO CONNECTED", ("active", None, None)),
    ("simcom_sim800", "+DTMF: 5", ("dtmf", "5", None)),
    ("simcom_sim800", "NO DIALTONE", ("ended", "unreachable", None)),
    ("v253_usr5637", "NMBR=5551234567", ("caller_id", None, "5551234567")),
    ("v253_conexant", "NMBR = 5551234567", ("caller_id", None, "5551234567")),
    ("v253_conexant", "RING", ("ring", None, None)),
])
def test_each_family_reads_its_own_lines(profile_id, line, expected):
    event = load_profile(profile_id).classify(line)
    kind, detail, number = expected
    assert event is not None and event.kind == kind
    got = {"call_state": event.state, "ended": event.reason, "dtmf": event.digit, "signal": event.value}.get(kind)
    assert got == detail
    if number is not None:
        assert event.number == number


def test_a_profile_can_extend_another_and_override_tables(tmp_path):
    uac = load_profile("quectel_ec25_uac")
    base = load_profile("quectel_ec25")
    assert uac.audio.transport == "sounddevice" and uac.audio.device == "Android"
    assert uac.audio.enable == "AT+QPCMV=1,2" and uac.audio.enable_when == "pre_answer"   # inherited
    assert uac.calls.events == base.calls.events and not uac.matches("Quectel", "EC25")
    usr = load_profile("v253_usr5637")
    assert usr.calls.answer[1] == "AT+VSM=128,8000" and usr.audio.transport == "inband"
    (tmp_path / "loop_a.toml").write_text('[profile]\nextends = "loop_b"\n')
    (tmp_path / "loop_b.toml").write_text('[profile]\nextends = "loop_a"\n')
    with pytest.raises(ProfileError, match=r"loop_[ab].toml: profile.extends: 'loop_[ab]': extends itself in a loop"):
        load_profile_file(tmp_path / "loop_a.toml")
    (tmp_path / "orphan.toml").write_text('[profile]\nextends = "nothing_here"\n')
    with pytest.raises(ProfileError, match="profile.extends: 'nothing_here': no such profile in the same folder"):
        load_profile_file(tmp_path / "orphan.toml")


def test_event_rules_are_checked(tmp_path):
    path = variant(tmp_path, r"^event = \"caller_id\"", 'event = "caller_idd"')
    with pytest.raises(ProfileError, match=r"calls.events\[1\].event: 'caller_idd' is not one of"):
        load_profile_file(path)
    path = variant(tmp_path, r'^match = .\^\\\+CLIP: \*"\(\?P<number>\[\^"\]\*\)".', r"match = '^\\+CLIP: *\"([^\"]*)\"'")
    with pytest.raises(ProfileError, match=r"calls.events\[1\].match: event 'caller_id' needs a \(\?P<number>...\) group"):
        load_profile_file(path)
