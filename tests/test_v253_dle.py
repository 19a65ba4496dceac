"""DLE shielding both ways: every event code, the escapes, the end of a stream, any chunking."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.v253.dle import (
    EVENT_CODES,
    DigitDebouncer,
    DleDecoder,
    DleEncoder,
    EventKind,
    describe,
    escape,
)

DLE = b"\x10"


def kinds(events):
    return [(e.kind, e.code) for e in events]


def feed_all(decoder: DleDecoder, chunks) -> tuple[bytes, list, bytes | None]:
    audio, events, rest = bytearray(), [], None
    for chunk in chunks:
        out = decoder.feed(chunk)
        audio += out.audio
        events += out.events
        if out.rest is not None:
            rest = (rest or b"") + out.rest
    return bytes(audio), events, rest


EXPECTED_KINDS = {
    "0": "dtmf", "9": "dtmf", "*": "dtmf", "#": "dtmf", "A": "dtmf", "D": "dtmf",
    "a": "answer_tone", "b": "busy", "K": "busy", "c": "fax_calling", "m": "fax_calling",
    "d": "dial_tone", "i": "dial_tone", "e": "data_calling", "f": "data_calling",
    "E": "invalid_format", "h": "handset_on_hook", "p": "handset_on_hook",
    "H": "handset_off_hook", "P": "handset_off_hook", "l": "loop_break", "L": "loop_polarity",
    "J": "sit", "o": "overrun", "q": "quiet", "s": "silence", "Q": "xon", "S": "xoff",
    "r": "ringback", "R": "ring", "t": "tdd", "T": "timing_mark", "u": "underrun", "v": "voice",
    "V": "voice", "w": "call_waiting", "Y": "lost_data", "$": "bong",
}


@pytest.mark.parametrize("code, kind", sorted(EXPECTED_KINDS.items()))
def test_every_event_code_has_its_meaning(code, kind):
    out = DleDecoder().feed(b"\x80" + DLE + code.encode() + b"\x81")
    assert out.audio == b"\x80\x81"
    assert [(e.kind.value, e.code, e.at) for e in out.events] == [(kind, code, 1)]
    assert out.rest is None


def test_the_table_covers_the_documented_codes():
    assert set(EXPECTED_KINDS) <= set(EVENT_CODES)
    assert all(EVENT_CODES[d] is EventKind.DTMF for d in "0123456789*#ABCD")


def test_dtmf_event_carries_its_digit():
    event = DleDecoder().feed(DLE + b"7").events[0]
    assert event.digit == "7"
    assert DleDecoder().feed(DLE + b"b").events[0].digit is None


def test_doubled_dle_is_one_literal_byte_and_dle_sub_is_two():
    out = DleDecoder().feed(b"\x01" + DLE + DLE + b"\x02" + DLE + b"\x1a" + b"\x03")
    assert out.audio == b"\x01\x10\x02\x10\x10\x03"
    assert out.events == [] and out.rest is None


def test_dle_etx_ends_the_stream_and_returns_what_follows():
    decoder = DleDecoder()
    out = decoder.feed(b"\x80\x80" + DLE + b"\x03\r\nOK\r\n")
    assert out.audio == b"\x80\x80"
    assert out.rest == b"\r\nOK\r\n" and out.end == 4
    assert decoder.ended
    later = decoder.feed(b"\r\nRING\r\n")
    assert later.audio == b"" and later.rest == b"\r\nRING\r\n" and later.end == 0
    decoder.reset()
    assert decoder.feed(b"\x7f").audio == b"\x7f"


def test_dle_etx_at_the_very_end_gives_an_empty_rest():
    out = DleDecoder().feed(b"\x80" + DLE + b"\x03")
    assert out.rest == b""


def test_shielded_dtmf_gives_one_digit_per_bracket():
    stream = DLE + b"/" + DLE + b"5" + b"\x80" * 5 + DLE + b"5" + DLE + b"~" \
        + DLE + b"/" + DLE + b"5" + DLE + b"5" + DLE + b"5" + DLE + b"~"
    decoder = DleDecoder()
    out = decoder.feed(stream)
    assert kinds(out.events) == [(EventKind.DTMF, "5"), (EventKind.DTMF, "5")]
    assert out.audio == b"\x80" * 5
    assert not decoder.in_dtmf_bracket


def test_events_other_than_digits_pass_inside_a_bracket():
    out = DleDecoder().feed(DLE + b"/" + DLE + b"1" + DLE + b"b" + DLE + b"1" + DLE + b"~")
    assert kinds(out.events) == [(EventKind.DTMF, "1"), (EventKind.BUSY, "b")]


def test_bare_repeated_digits_are_all_reported_and_the_debouncer_folds_them():
    out = DleDecoder().feed(DLE + b"5" + DLE + b"5" + b"\x80" + DLE + b"5")
    assert [e.digit for e in out.events] == ["5", "5", "5"]
    debouncer = DigitDebouncer(hold=0.15)
    times = [0.0, 0.05, 0.5]
    assert [debouncer.accept(e.digit, t) for e, t in zip(out.events, times)] == [True, False, True]
    assert debouncer.accept("6", 0.52) and debouncer.accept("5", 0.54)


def test_unknown_code_is_reported_not_fatal():
    decoder = DleDecoder()
    out = decoder.feed(b"\x80" + DLE + b"z" + b"\x81" + DLE + b"\x05")
    assert kinds(out.events) == [(EventKind.UNKNOWN, "z"), (EventKind.UNKNOWN, "\x05")]
    assert out.audio == b"\x80\x81"
    assert decoder.unknown_codes == 2


def test_event_positions_point_into_the_returned_audio():
    out = DleDecoder().feed(b"ab" + DLE + DLE + b"c" + DLE + b"b" + b"de" + DLE + b"d")
    assert out.audio == b"ab\x10cde"
    assert [(e.code, e.at) for e in out.events] == [("b", 4), ("d", 6)]


def test_a_dle_split_across_feeds():
    decoder = DleDecoder()
    first = decoder.feed(b"\x80" + DLE)
    assert first.audio == b"\x80" and first.events == []
    second = decoder.feed(b"b\x81")
    assert kinds(second.events) == [(EventKind.BUSY, "b")] and second.audio == b"\x81"
    decoder.feed(DLE)
    assert decoder.feed(DLE).audio == b"\x10"
    assert decoder.feed(DLE).end is None
    end = decoder.feed(b"\x03OK")
    assert end.rest == b"OK" and end.end == 1 and decoder.ended


SAMPLE_STREAM = (b"\x80\x10\x10\x7f" + DLE + b"/" + DLE + b"3" + DLE + b"3" + DLE + b"~"
                 + b"\x10\x1a" + DLE + b"b" + b"\x10\x10\x10\x10" + DLE + b"q" + b"\x81"
                 + DLE + b"\x03" + b"\r\nOK\r\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE_STREAM)), max_size=12))
def test_any_chunking_gives_the_same_result(cuts):
    bounds = [0, *sorted(cuts), len(SAMPLE_STREAM)]
    chunks = [SAMPLE_STREAM[a:b] for a, b in zip(bounds, bounds[1:])]
    whole = feed_all(DleDecoder(), [SAMPLE_STREAM])
    split = feed_all(DleDecoder(), chunks)
    assert (split[0], kinds(split[1]), split[2]) == (whole[0], kinds(whole[1]), whole[2])
    assert whole[0] == b"\x80\x10\x7f\x10\x10\x10\x10\x81"
    assert kinds(whole[1]) == [(EventKind.DTMF, "3"), (EventKind.BUSY, "b"),
                               (EventKind.QUIET, "q")]
    assert whole[2] == b"\r\nOK\r\n"


def test_command_state_filter_keeps_text_and_lifts_out_events():
    decoder = DleDecoder(stop_at_etx=False)
    out = decoder.feed(DLE + b"b" + b"\r\nOK\r\n" + DLE + b"\x03" + DLE + b"d" + b"RING\r\n")
    assert out.audio == b"\r\nOK\r\nRING\r\n"
    assert kinds(out.events) == [(EventKind.BUSY, "b"), (EventKind.END_OF_STREAM, "\x03"),
                                 (EventKind.DIAL_TONE, "d")]
    assert out.rest is None and not decoder.ended


def test_escape_doubles_every_dle():
    assert escape(b"\x10\x00\x10\x10\xff") == b"\x10\x10\x00\x10\x10\x10\x10\xff"
    assert escape(b"") == b""


def test_terminators_with_one_and_three_dles():
    one, three = DleEncoder(), DleEncoder(dle_count=3)
    assert one.end_of_stream() == b"\x10\x03"
    assert one.abort_receive() == b"\x10!"
    assert one.end_duplex() == b"\x10^"
    assert one.flush() == b"\x10\x18"
    assert one.keepalive() == b"\x10\x00"
    assert three.end_of_stream() == b"\x10\x10\x10\x03"
    assert three.abort_receive() == b"\x10\x10\x10!"
    with pytest.raises(ValueError, match="dle_count 2"):
        DleEncoder(dle_count=2)


def test_triple_dle_terminator_reads_as_a_literal_then_the_end():
    out = DleDecoder().feed(b"\x80" + DleEncoder(dle_count=3).end_of_stream())
    assert out.audio == b"\x80\x10" and out.rest == b""


def test_dle_heavy_audio_round_trips():
    rng = random.Random(7)
    audio = bytes(rng.choice([0x10, 0x10, 0x10, 0x03, 0x1a, 0x80, 0x7f, 0x00]) for _ in range(20000))
    wire = DleEncoder().escape(audio) + DleEncoder().end_of_stream() + b"OK"
    decoder = DleDecoder()
    chunks = []
    pos = 0
    while pos < len(wire):
        size = rng.randint(1, 700)
        chunks.append(wire[pos:pos + size])
        pos += size
    got, events, rest = feed_all(decoder, chunks)
    assert got == audio
    assert events == [] and rest == b"OK"


def test_describe_spells_control_bytes():
    assert describe(b"\x10/\x105\x10~\x10\x03\r\n\xfe") == "<DLE>/<DLE>5<DLE>~<DLE><ETX><CR><LF><fe>"
