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
