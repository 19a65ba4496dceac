"""Formatted caller ID between rings in both spacings, withheld numbers, partial records, rings."""

from __future__ import annotations

from gateway.v253.callerid import (
    ABSENT,
    AVAILABLE,
    PRIVATE,
    UNAVAILABLE,
    CallerId,
    CallerIdParser,
    RingCounter,
    parse_tag,
)


def run(lines):
    parser = CallerIdParser()
    return [record for line in lines if (record := parser.feed(line)) is not None], parser


def test_usr_record_without_spaces():
    records, _ = run(["RING", "DATE=0117", "TIME=1452", "NMBR=5551234567",
                      "NAME=WIRELESS CALLER", "RING"])
    assert records == [CallerId("0117", "1452", "5551234567", "WIRELESS CALLER")]
    assert records[0].number == "5551234567" and records[0].name == "WIRELESS CALLER"
    assert records[0].number_status == AVAILABLE


def test_conexant_record_with_spaces():
    records, _ = run(["RING", "DATE = 0805", "TIME = 0932", "NMBR = 8005550199",
                      "NAME = JOHN  Q PUBLIC ", "RING"])
    assert records == [CallerId("0805", "0932", "8005550199", "JOHN  Q PUBLIC")]


def test_private_and_unavailable():
    records, _ = run(["DATE=0101", "TIME=0000", "NMBR=P", "NAME=O", "RING"])
    record = records[0]
    assert record.number is None and record.number_status == PRIVATE
    assert record.name is None and record.name_status == UNAVAILABLE
    records, _ = run(["NMBR = O", "RING"])
    assert records[0].number_status == UNAVAILABLE and records[0].name_status == ABSENT


def test_partial_record_without_name_comes_out_on_flush():
    records, parser = run(["RING", "DATE=1203", "TIME=1800", "NMBR=01632960000"])
    assert records == []
    assert parser.pending == CallerId("1203", "1800", "01632960000", None)
    record = parser.flush()
    assert record.number == "01632960000" and record.name_status == ABSENT
    assert parser.flush() is None and parser.pending is None


def test_mesg_unrelated_and_empty_tags_are_ignored():
    records, _ = run(["RING", "MESG=060342", "OK", "DATE=0117", "NAME=", "NMBR=555", "RING"])
    assert records == [CallerId("0117", None, "555", None)]


def test_second_record_without_ring_between_closes_the_first():
    records, parser = run(["DATE=0117", "NMBR=111", "DATE=0117", "NMBR=222"])
    assert records == [CallerId("0117", None, "111")]
    assert parser.flush() == CallerId("0117", None, "222")


def test_a_ring_with_nothing_pending_gives_nothing():
    assert run(["RING", "RING"])[0] == []


def test_ddn_nmbr_and_lowercase_tags():
    assert parse_tag("DDN_NMBR=5551230000") == ("DDN_NMBR", "5551230000")
    assert parse_tag("nmbr = 123") == ("NMBR", "123")
    assert parse_tag("RING") is None and parse_tag("+VCID: 1") is None
    records, _ = run(["DDN_NMBR=5551230000", "RING"])
    assert records[0].number == "5551230000"


def test_ring_counter_counts_one_call_and_restarts_after_a_gap():
    counter = RingCounter(reset_after=8.0)
    assert [counter.ring(t) for t in (0.0, 6.0, 12.0)] == [1, 2, 3]
    assert not counter.gave_up(15.0) and counter.gave_up(20.5)
    assert counter.ring(30.0) == 1
    counter.reset()
    assert counter.count == 0 and not counter.gave_up(100.0)
