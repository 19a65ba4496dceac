"""The SMS PDU codec: known vectors, hand-built PDUs, boundaries, errors, properties, and a
cross-check against python-gsmmodem-new (gsmmodem.pdu) for the texts that library supports."""

from datetime import datetime, timedelta, timezone

import gsmmodem.pdu as oracle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.modem.sms_pdu import (GSM7_BASIC, GSM7_EXTENSION, Concat, Deliver, PduError,
                                   Reassembler, decode_deliver, decode_submit, encode_deliver,
                                   encode_submit, relative_validity, relative_validity_minutes,
                                   split_text)

CLASSIC = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
UTC = timezone.utc
T0 = datetime(2026, 12, 1, 9, 30, 15, tzinfo=timezone(timedelta(hours=5, minutes=45)))


# -- known vectors and hand-built PDUs ------------------------------------------------------

def test_classic_deliver_vector():
    d = decode_deliver(CLASSIC)
    assert d.smsc == "+31624000000"
    assert d.sender == "+31641600986"
    assert d.text == "How are you?"
    assert d.timestamp == datetime(2002, 8, 26, 19, 37, 41, tzinfo=UTC)
    assert (d.concat, d.encoding, d.message_class, d.pid) == (None, "gsm7", None, 0)


def test_hellohello_submit_matches_the_textbook_septets():
    [pdu] = encode_submit("+31641600986", "hellohello", smsc=False)
    assert pdu.hex == "01000B911346610089F600000AE8329BFD4697D9EC37"
    assert pdu.tpdu_length == 22
    [with_smsc] = encode_submit("+31641600986", "hellohello")
    assert with_smsc.hex == "00" + pdu.hex and with_smsc.tpdu_length == 22


def test_hand_built_ucs2_deliver_with_concatenation_header():
    text = "Привет, мир €"
    ud = bytes.fromhex("0500032A0201") + text.encode("utf-16-be")
    pdu = ("00" "44" "0B919171563412F0" "00" "08" "62211090000080"     # UDHI, +19176543210, UCS-2
           + f"{len(ud):02X}" + ud.hex().upper())
    d = decode_deliver(pdu)
    assert d.text == text and d.concat == Concat(42, 2, 1) and d.encoding == "ucs2"
    assert d.sender == "+19176543210"
    assert d.timestamp == datetime(2026, 12, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=2)))


def test_hand_built_alphanumeric_sender_and_negative_time_zone():
    # "Info" packed as GSM-7 is 49 B7 F9 0D → 7 semi-octets used; TZ -05:00 = 20 quarters → 0A
    pdu = "00" "04" "07D049B7F90D" "00" "00" "6221109000000A" "02" "C834"
    d = decode_deliver(pdu)
    assert d.sender == "Info"
    assert d.text == "Hi"
    assert d.timestamp.utcoffset() == timedelta(hours=-5)


def test_long_gsm7_text_with_extension_chars_is_two_parts():
    text = "€[]" + "x" * 189             # 192 characters, 195 septets
    encoding, parts = split_text(text)
    assert encoding == "gsm7" and len(parts) == 2
    pdus = encode_submit("+4912345", text, reference=9)
    assert [decode_submit(p.hex).concat for p in pdus] == [Concat(9, 2, 1), Concat(9, 2, 2)]
    assert "".join(decode_submit(p.hex).text for p in pdus) == text


def test_emoji_round_trip_as_surrogate_pair():
    [pdu] = encode_submit("+33600000000", "Привет 😀")
    assert pdu.hex.endswith("D83DDE00")       # U+1F600 as its UTF-16 pair
    assert decode_submit(pdu.hex).text == "Привет 😀"
    [dpdu] = encode_deliver("+33600000000", "Привет 😀", T0)
    assert decode_deliver(dpdu).text == "Привет 😀"


# -- splitting boundaries -------------------------------------------------------------------

@pytest.mark.parametrize("text, encoding, sizes", [
    ("a" * 160, "gsm7", [160]),
    ("a" * 161, "gsm7", [153, 8]),
    ("a" * 306, "gsm7", [153, 153]),
    ("a" * 307, "gsm7", [153, 153, 1]),
    ("a" * 158 + "€", "gsm7", [159]),               # 160 septets: still one SMS
    ("a" * 159 + "€", "gsm7", [153, 7]),            # 161 septets
    ("a" * 152 + "€" + "b" * 10, "gsm7", [152, 11]),  # the escape does not straddle parts
    ("ж" * 70, "ucs2", [70]),
    ("ж" * 71, "ucs2", [67, 4]),
    ("ж" * 134, "ucs2", [67, 67]),
    ("ж" * 135, "ucs2", [67, 67, 1]),
    ("ж" * 68 + "😀", "ucs2", [69]),                 # 70 code units
    ("ж" * 69 + "😀", "ucs2", [67, 3]),              # 71 code units
    ("ж" * 66 + "😀" + "ж" * 3, "ucs2", [66, 4]),    # the pair does not straddle parts
    ("", "gsm7", [0]),
])
def test_split_boundaries(text, encoding, sizes):
    got_encoding, parts = split_text(text)
    assert got_encoding == encoding
    assert [len(p) for p in parts] == sizes
    assert "".join(parts) == text


def test_sixteen_bit_reference_uses_its_header_and_smaller_parts():
    assert [len(p) for p in split_text("a" * 161, wide_reference=True)[1]] == [152, 9]
    assert [len(p) for p in split_text("ж" * 71, wide_reference=True)[1]] == [66, 5]
    pdus = encode_submit("+4912345", "a" * 161, reference=0x1234)
    assert "0608041234" in pdus[0].hex          # UDHL 6, IEI 08, length 4, reference 0x1234
    assert [decode_submit(p.hex).concat for p in pdus] == [Concat(0x1234, 2, 1), Concat(0x1234, 2, 2)]


def test_more_than_255_parts_is_refused():
    with pytest.raises(PduError, match="256 parts"):
        split_text("a" * (153 * 255 + 1))


def test_lone_surrogate_in_text_is_refused():
    with pytest.raises(PduError, match="index 2"):
        split_text("ab\ud800c")


# -- header fields --------------------------------------------------------------------------

@pytest.mark.parametrize("minutes, vp, back", [
    (1, 0, 5), (5, 0, 5), (6, 1, 10), (720, 143, 720), (721, 144, 750), (1440, 167, 1440),
    (1441, 168, 2880), (30 * 1440, 196, 30 * 1440), (30 * 1440 + 1, 197, 35 * 1440),
    (63 * 7 * 1440, 255, 63 * 7 * 1440),
])
def test_relative_validity_rounds_up(minutes, vp, back):
    assert relative_validity(minutes) == vp
    assert relative_validity_minutes(vp) == back
    [pdu] = encode_submit("+1555", "x", validity_minutes=minutes)
    assert decode_submit(pdu.hex).validity_minutes == back


@pytest.mark.parametrize("minutes", [0, -5, 63 * 7 * 1440 + 1])
def test_validity_out_of_range(minutes):
    with pytest.raises(PduError, match="validity"):
        encode_submit("+1555", "x", validity_minutes=minutes)


def test_message_reference_smsc_and_number_types():
    [pdu] = encode_submit("0612345678", "x", smsc="+31624000000", message_reference=0x7F)
    assert pdu.hex.startswith("07911326040000F0" "01" "7F" "0A81")
    s = decode_submit(pdu.hex)
    assert (s.smsc, s.message_reference, s.number) == ("+31624000000", 0x7F, "0612345678")
    assert decode_submit(pdu.hex[16:], tpdu_length=pdu.tpdu_length).smsc is None


@pytest.mark.parametrize("dcs, encoding, cls", [
    ("00", "gsm7", None), ("10", "gsm7", 0), ("11", "gsm7", 1), ("12", "gsm7", 2),
    ("F0", "gsm7", 0), ("F1", "gsm7", 1), ("F3", "gsm7", 3), ("C0", "gsm7", None),
    ("D8", "gsm7", None), ("18", "ucs2", 0), ("E0", "ucs2", None), ("04", "8bit", None),
    ("F6", "8bit", 2), ("48", "ucs2", None),
])
def test_dcs_groups(dcs, encoding, cls):
    ud = {"gsm7": "02C834", "ucs2": "0400480069", "8bit": "024869"}[encoding]
    d = decode_deliver("00" "04" "0381214300" + dcs + "62211090000080" + ud)
    assert (d.encoding, d.message_class, d.text, d.sender) == (encoding, cls, "Hi", "123")


def test_invalid_concat_numbers_void_the_element_not_the_message():
    # seq 3 of 2: 23.040 says ignore the element
    ud = bytes.fromhex("05000307" "0203") + "ok".encode("utf-16-be")
    d = decode_deliver("00" "44" "0381214300" "08" "62211090000080" + f"{len(ud):02X}" + ud.hex())
    assert d.concat is None and d.text == "ok"


def test_gsm7_unknown_escape_and_form_feed():
    [pdu] = encode_deliver("+1", "\f|^", T0)
    assert decode_deliver(pdu).text == "\f|^"
    # ESC followed by 'A' (0x41, no extension) shows the basic 'A'
    from gateway.modem.sms_pdu import pack_septets
    ud = pack_septets([0x1B, 0x41, 0x42])
    d = decode_deliver("00" "04" "0381214300" "00" "62211090000080" "03" + ud.hex())
    assert d.text == "AB"


# -- malformed input ------------------------------------------------------------------------

@pytest.mark.parametrize("pdu, match", [
    ("0791132604", r"SMSC address needs 7 octet\(s\) at octet 1"),
    ("07911326040000F004", "TP-OA length needs 1 octet"),
    ("07911326040000F0040B911346610089F600002080629173140", "odd number of hex digits"),
    ("07911326040000F0040B91134661zz89F6", "not hexadecimal at character 28"),
    ("0001000B911346610089F600000AE8329BFD4697D9EC37", "TP-MTI 1, not SMS-DELIVER"),
    ("00040381214300" "00" "62311090000080" "02C834", "TP-SCTS at octet 8: month must be in 1..12"),
    ("00040381214300" "00" "6A211090000080" "02C834", "TP-SCTS at octet 8: octet 6A"),
    ("00040381214300" "08" "62211090000080" "03004800", "odd length 3"),
    ("00440381214300" "08" "62211090000080" "0409000300", "header of 9 octets exceeds"),
    ("00040381214300" "00" "62211090000080" "02C83400", r"1 octet\(s\) after the user data"),
    ("00040381214300" "00" "62211090000080" "A1", "161 septets, at most 160"),
    ("00040381214300" "24" "62211090000080" "02C834", "compressed"),
    ("00040381F12300" "00" "62211090000080" "02C834", "filler F inside"),
])
def test_malformed_deliver_names_the_place(pdu, match):
    with pytest.raises(PduError, match=match):
        decode_deliver(pdu)


@pytest.mark.parametrize("number, text, match", [
    ("+12-34", "x", "'-' at index 3"),
    ("", "x", "no digits"),
    ("+1" + "2" * 21, "x", "at most 20"),
])
def test_bad_submit_input(number, text, match):
    with pytest.raises(PduError, match=match):
        encode_submit(number, text)


def test_submit_length_must_match_announced_length():
    [pdu] = encode_submit("+1555", "x")
    with pytest.raises(PduError, match="announced TPDU length 5"):
        decode_submit(pdu.hex, tpdu_length=5)


def test_bad_deliver_timestamp_and_sender():
    with pytest.raises(PduError, match="quarter hour"):
        encode_deliver("+1", "x", datetime(2026, 1, 1, tzinfo=timezone(timedelta(minutes=10))))
    with pytest.raises(PduError, match="at most 11"):
        encode_deliver("A very long name", "x", T0)


# -- properties -----------------------------------------------------------------------------

GSM_CHARS = [c for c in GSM7_BASIC if c != "\x1b"] + list(GSM7_EXTENSION.values())
texts = st.one_of(
    st.text(st.sampled_from(GSM_CHARS), max_size=500),
    st.text(st.sampled_from(GSM_CHARS + list("日本語のテキストжё😀🎉𝄞")), max_size=300),
    st.text(max_size=200),               # any code point except lone surrogates
)
numbers = st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True)
senders = st.one_of(numbers, st.text(st.sampled_from("ABCDEFGHIJabcdefghij0123 -"), min_size=1,
                                     max_size=11).filter(lambda s: not s.isdigit()))
timestamps = st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2079, 12, 31),
                          timezones=st.integers(-79, 79).map(lambda q: timezone(timedelta(minutes=15 * q)))
                          ).map(lambda t: t.replace(microsecond=0))


@settings(max_examples=150, deadline=None)
@given(numbers, texts, st.integers(0, 0xFFFF), st.booleans())
def test_submit_round_trip(number, text, reference, smsc):
    pdus = encode_submit(number, text, reference=reference, smsc=smsc)
    decoded = [decode_submit(p.hex, tpdu_length=p.tpdu_length) for p in pdus]
    assert "".join(s.text for s in decoded) == text
    assert all(s.number == number for s in decoded)
    for p in pdus:
        assert len(bytes.fromhex(p.hex)) - p.tpdu_length == (1 if smsc else 0)
    if len(pdus) > 1:
        assert [s.concat for s in decoded] == [Concat(reference, len(pdus), i + 1) for i in range(len(pdus))]
    for s in decoded:
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in s.text)   # no pair was split
        wide = set(GSM7_EXTENSION.values()) if s.encoding == "gsm7" else {c for c in s.text if ord(c) > 0xFFFF}
        cost = sum(2 if c in wide else 1 for c in s.text)
        assert cost <= ((160 if s.encoding == "gsm7" else 70) if len(pdus) == 1 else
                        (153 if s.encoding == "gsm7" else 67) - (reference > 255))


@settings(max_examples=150, deadline=None)
@given(senders, texts, timestamps, st.integers(0, 0xFFFF))
def test_deliver_round_trip_and_reassembly(sender, text, timestamp, reference):
    pdus = encode_deliver(sender, text, timestamp, reference=reference)
    parts = [decode_deliver(p) for p in pdus]
    assert all(d.sender == sender and d.timestamp == timestamp for d in parts)
    assert "".join(d.text for d in parts) == text
    r = Reassembler()
    done = [m for d in reversed(parts) for m in r.add(d, now=0.0)]
    assert len(done) == 1 and done[0].text == text and done[0].missing == ()
    assert done[0].parts == len(parts) and r.stored == 0


# -- cross-check against python-gsmmodem-new ------------------------------------------------

# Characters both codecs map alike: gsmmodem puts '`' where 03.38 has '§' and 'ÿ' for form feed,
# and it cannot encode text beyond the BMP.
COMMON_GSM = [c for c in GSM_CHARS if c not in "§\f"]
BMP = st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))
common_texts = st.one_of(st.text(st.sampled_from(COMMON_GSM), min_size=1, max_size=400),
                         st.text(BMP, min_size=1, max_size=200).filter(lambda t: "§" not in t and "\f" not in t))


# gsmmodem types a number without "+" as national (A1), we as unknown (81, the 27.005 default);
# and it reads two-digit years from 69 on as 19xx.
international = st.from_regex(r"\+[1-9][0-9]{4,14}", fullmatch=True)
recent = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2068, 12, 31),
                      timezones=st.integers(-79, 79).map(lambda q: timezone(timedelta(minutes=15 * q)))
                      ).map(lambda t: t.replace(microsecond=0))


@settings(max_examples=100, deadline=None)
@given(international, common_texts, st.integers(0, 255))
def test_submit_is_byte_identical_to_gsmmodem(number, text, reference):
    ours = encode_submit(number, text, reference=reference, message_reference=reference)
    theirs = oracle.encodeSmsSubmitPdu(number, text, reference=reference, requestStatusReport=False)
    assert [p.hex for p in ours] == [str(p).upper() for p in theirs]
    assert [p.tpdu_length for p in ours] == [p.tpduLength for p in theirs]
    for p in theirs:        # and our decoder reads theirs
        s = decode_submit(str(p))
        assert s.number == number


@settings(max_examples=100, deadline=None)
@given(senders, common_texts, recent, st.integers(0, 255))
def test_gsmmodem_decodes_our_deliver(sender, text, timestamp, reference):
    pdus = encode_deliver(sender, text, timestamp, reference=reference)
    decoded = [oracle.decodeSmsPdu(p) for p in pdus]
    assert "".join(d["text"] for d in decoded) == text
    assert all(d["type"] == "SMS-DELIVER" and d["number"] == sender for d in decoded)
    assert all(d["time"] == timestamp for d in decoded)
    if len(pdus) > 1:
        concat = [d["udh"][0] for d in decoded]
        assert [(c.reference, c.parts, c.number) for c in concat] == \
            [(reference, len(pdus), i + 1) for i in range(len(pdus))]


def test_we_decode_gsmmodem_multipart_submit():
    text = "€uro " * 40 + "Привет"
    theirs = oracle.encodeSmsSubmitPdu("+4915112345", text, reference=77, requestStatusReport=False)
    decoded = [decode_submit(str(p)) for p in theirs]
    assert "".join(s.text for s in decoded) == text
    assert [s.concat for s in decoded] == [Concat(77, len(theirs), i + 1) for i in range(len(theirs))]


# -- reassembly -----------------------------------------------------------------------------

def _part(sender, text, ref, total, seq):
    return Deliver(sender, text, T0, Concat(ref, total, seq) if total > 1 else None)


def test_reassembler_interleaved_senders_duplicates_and_out_of_order():
    r = Reassembler()
    assert r.add(_part("+1", "c", 5, 3, 3), 0) == []
    assert r.add(_part("+2", "B", 5, 2, 2), 1) == []      # same reference, other sender
    assert r.add(_part("+1", "a", 5, 3, 1), 2) == []
    assert r.add(_part("+1", "X", 5, 3, 1), 3) == []      # duplicate of part 1: first copy kept
    assert r.stored == 3
    [one] = r.add(_part("+1", "b", 5, 3, 2), 4)
    assert (one.sender, one.text, one.parts, one.missing) == ("+1", "abc", 3, ())
    [two] = r.add(_part("+2", "A", 5, 2, 1), 5)
    assert two.text == "AB"
    [single] = r.add(_part("+3", "solo", 0, 1, 1), 6)
    assert single.text == "solo" and single.parts == 1


def test_reassembler_gives_up_after_max_wait_with_missing_parts():
    r = Reassembler(max_wait=60)
    r.add(_part("+1", "a", 1, 3, 1), 100)
    r.add(_part("+1", "c", 1, 3, 3), 130)
    assert r.next_deadline() == 160
    assert r.expire(159.9) == []
    [late] = r.expire(160)
    assert (late.text, late.missing, late.parts) == ("ac", (2,), 3)
    assert r.stored == 0 and r.next_deadline() is None


def test_reassembler_bounds_stored_parts():
    r = Reassembler(max_parts=4)
    r.add(_part("+1", "a", 1, 9, 1), 0)
    r.add(_part("+1", "b", 1, 9, 2), 1)
    r.add(_part("+2", "x", 1, 9, 1), 2)
    r.add(_part("+2", "y", 1, 9, 2), 3)
    [evicted] = r.add(_part("+3", "z", 1, 9, 1), 4)
    assert evicted.sender == "+1" and evicted.text == "ab" and evicted.missing == tuple(range(3, 10))
    assert r.stored == 3
    assert sorted(m.sender for m in r.flush()) == ["+2", "+3"]


def test_reassembler_joins_a_surrogate_pair_split_by_a_foreign_phone():
    emoji = "😀".encode("utf-16-be")
    p1 = bytes.fromhex("050003110201") + "x".encode("utf-16-be") + emoji[:2]
    p2 = bytes.fromhex("050003110202") + emoji[2:] + "y".encode("utf-16-be")
    parts = [decode_deliver("00" "44" "0381214300" "08" "62211090000080" + f"{len(u):02X}" + u.hex())
             for u in (p1, p2)]
    r = Reassembler()
    assert r.add(parts[0], 0) == []
    [m] = r.add(parts[1], 0)
    assert m.text == "x😀y"
    # on its own, such a part shows the replacement character
    assert decode_deliver("00" "44" "0381214300" "08" "62211090000080" + f"{len(p1):02X}" + p1.hex(),
                          keep_edge_surrogates=False).text == "x\ufffd"
