"""Historical metrics on a known set of contact records checked by hand, the interval rule, and the
store's filtered queries (outcome in SQL agrees with outcome_of in Python)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.center.metrics import acw_seconds, compute, handle_seconds, metrics_between, queue_wait, summarize
from gateway.center.records import OUTCOMES, ContactStore, outcome_of

H9 = datetime(2025, 12, 1, 9, tzinfo=timezone.utc).timestamp()   # 09:00 UTC
H12 = H9 + 3 * 3600


def _rec(cid, at, method="INBOUND", **fields):
    """A record with times given in seconds after 09:00 UTC."""
    rec = {"contact_id": cid, "line_id": "gsm1", "caller": f"+1555123{cid[-2:]}00", "initiation_method": method}
    for name, value in dict(initiated_at=at, **fields).items():
        rec[name] = H9 + value if name.endswith("_at") and value is not None else value
    return rec


# Two queues (support, sales), two agents (alice, bob), three hours (09, 10, 11 UTC). Times in seconds after
# 09:00. "wait" = connected - enqueued (or ended - enqueued for an abandon); "handle" = ACW end (or end) - connected.
RECORDS = [
    # 09:00-10:00
    _rec("c01", 0, queue_id="support", enqueued_at=10, connected_to_agent_at=25, agent_id="alice", ended_at=145,
         after_contact_work_end_at=175, disconnect_reason="customer_hung_up",
         recording_path="/rec/c01.wav"),                                    # wait 15, handle 150, ACW 30
    _rec("c02", 600, queue_id="support", enqueued_at=610, connected_to_agent_at=650, agent_id="bob", ended_at=830,
         disconnect_reason="agent_hung_up", recording_path="/rec/c02.wav",
         recording_removed_at=0),                                           # wait 40, handle 180, no ACW end
    _rec("c03", 1200, queue_id="support", enqueued_at=1210, ended_at=1215,
         disconnect_reason="customer_hung_up"),                             # abandoned after 5 s (short)
    _rec("c04", 1800, queue_id="sales", enqueued_at=1808, connected_to_agent_at=1820, agent_id="alice",
         ended_at=1880, after_contact_work_end_at=1890),                    # wait 12, handle 70, ACW 10
    _rec("c05", 2700, "OUTBOUND", queue_id="sales", connected_to_agent_at=2700, agent_id="bob", ended_at=2790,
         after_contact_work_end_at=2800),                                   # outbound, handle 100, ACW 10
    # 10:00-11:00
    _rec("c06", 3600, queue_id="support", enqueued_at=3610, ended_at=3670),  # abandoned after 60 s
    _rec("c07", 3900, queue_id="support", enqueued_at=3905, ended_at=4000, voicemail_status="recorded",
         voicemail_path="/vm/c07.wav", voicemail_seconds=40.0),              # voicemail left from the queue
    _rec("c08", 4200, ended_at=4260, voicemail_status="recorded", voicemail_path="/vm/c08.wav",
         caller="+4930111222"),                                              # after-hours voicemail, no queue
    _rec("c09", 4500, "CALLBACK", queue_id="support", enqueued_at=4500, connected_to_agent_at=4800, agent_id="bob",
         ended_at=4920, after_contact_work_end_at=4940),                    # callback: handle 140, ACW 20, no wait
    _rec("c10", 5000, queue_id="sales", enqueued_at=5010, connected_to_agent_at=5030, agent_id="alice",
         ended_at=5270),                                                    # wait 20 (= SL threshold), handle 240
    # 11:00-12:00
    _rec("c11", 7200, queue_id="sales", enqueued_at=7205, ended_at=7235),     # abandoned after 30 s
    _rec("c12", 7500, ended_at=7530, disconnect_reason="flow_disconnect"),  # ended in the flow (closed message)
    _rec("c13", 7800, queue_id="support", enqueued_at=7805, connected_to_agent_at=7815,
         agent_id="alice"),                                                 # still talking: in progress
    _rec("c14", 10770, queue_id="sales", enqueued_at=10775, connected_to_agent_at=10790, agent_id="bob",
         ended_at=11090, after_contact_work_end_at=11100),                  # 11:59:30-12:05:30: wait 15, handle 310
    # never counted: an SMS, one just before 09:00 (ends inside the interval), one exactly at 12:00
    _rec("s01", 7900, ended_at=7900, attributes={"channel": "SMS", "text": "hi"}, disconnect_reason="sms_received"),
    _rec("c00", -1, queue_id="support", enqueued_at=5, connected_to_agent_at=8, agent_id="alice", ended_at=300),
    _rec("c99", 3 * 3600, queue_id="sales", enqueued_at=10805, ended_at=10900),
]


def _metrics(**values):
    base = dict(contacts=0, queued=0, handled=0, abandoned=0, voicemails=0, outbound=0, callbacks=0, in_progress=0,
                avg_handle_seconds=None, avg_acw_seconds=None, avg_answer_seconds=None, avg_abandon_seconds=None,
                service_level=None, longest_wait_seconds=None)
    return {**base, **values}


# Whole interval [09:00, 12:00): 14 voice contacts (c01-c14).
#   handled 7 (c01 c02 c04 c05 c09 c10 c14), abandoned 3 (c03 c06 c11), voicemails 2 (c07 c08), in progress 1 (c13),
#   ended in the flow 1 (c12); queued 11 (all but c05 c08 c12).
#   AHT = (150+180+70+100+140+240+310)/7 = 1190/7 = 170.0;  ACW = (30+10+10+20+10)/5 = 16.0
#   ASA over answered queue waits (callback c09 left out) = (15+40+12+20+15)/5 = 20.4
#   abandon time = (5+60+30)/3 = 31.67
#   SL 20 = answered within 20 (15 12 20 15 -> 4) / (5 answered + abandons after 20 (c06 60, c11 30) -> 7) = 57.14 %
#   longest wait 60 (c06; the callback's 300 is not a wait on the line)
TOTAL = _metrics(contacts=14, queued=11, handled=7, abandoned=3, voicemails=2, outbound=1, callbacks=1, in_progress=1,
                 avg_handle_seconds=170.0, avg_acw_seconds=16.0, avg_answer_seconds=20.4, avg_abandon_seconds=31.67,
                 service_level=57.14, longest_wait_seconds=60.0)

BY_QUEUE = [
    # sales: c04 c05 c10 c11 c14. AHT (70+100+240+310)/4 = 180; ACW (10+10+10)/3; ASA (12+20+15)/3 = 15.67;
    # SL (12 20 15 within) 3 / (3 + c11) = 75 %
    dict(key="sales", **_metrics(contacts=5, queued=4, handled=4, abandoned=1, outbound=1,
                                 avg_handle_seconds=180.0, avg_acw_seconds=10.0, avg_answer_seconds=15.67,
                                 avg_abandon_seconds=30.0, service_level=75.0, longest_wait_seconds=30.0)),
    # support: c01 c02 c03 c06 c07 c09 c13. AHT (150+180+140)/3 = 156.67; ACW (30+20)/2; ASA (15+40)/2;
    # abandon (5+60)/2; SL c01 1 / (2 answered + c06) = 33.33 %
    dict(key="support", **_metrics(contacts=7, queued=7, handled=3, abandoned=2, voicemails=1, callbacks=1,
                                   in_progress=1, avg_handle_seconds=156.67, avg_acw_seconds=25.0,
                                   avg_answer_seconds=27.5, avg_abandon_seconds=32.5, service_level=33.33,
                                   longest_wait_seconds=60.0)),
    # no queue: c08 (voicemail), c12 (flow)
    dict(key=None, **_metrics(contacts=2, voicemails=1)),
]

BY_AGENT = [
    # alice: c01 c04 c10 handled, c13 in progress. AHT (150+70+240)/3 = 153.33; ACW (30+10)/2; ASA (15+12+20)/3;
    # SL 3/3
    dict(key="alice", **_metrics(contacts=4, queued=4, handled=3, in_progress=1, avg_handle_seconds=153.33,
                                 avg_acw_seconds=20.0, avg_answer_seconds=15.67, service_level=100.0,
                                 longest_wait_seconds=20.0)),
    # bob: c02 c05 c09 c14. AHT (180+100+140+310)/4 = 182.5; ACW (10+20+10)/3 = 13.33; ASA (40+15)/2; SL 1/2
    dict(key="bob", **_metrics(contacts=4, queued=3, handled=4, outbound=1, callbacks=1, avg_handle_seconds=182.5,
                               avg_acw_seconds=13.33, avg_answer_seconds=27.5, service_level=50.0,
                               longest_wait_seconds=40.0)),
    # no agent: c03 c06 c11 abandoned, c07 c08 voicemail, c12 flow. SL 0 / (0 + c06 + c11) = 0 %
    dict(key=None, **_metrics(contacts=6, queued=4, abandoned=3, voicemails=2, avg_abandon_seconds=31.67,
                              service_level=0.0, longest_wait_seconds=60.0)),
]

BY_HOUR = [
    # 09: c01-c05. AHT (150+180+70+100)/4 = 125; ACW (30+10+10)/3 = 16.67; ASA (15+40+12)/3 = 22.33;
    # SL (15 12) 2 / 3 answered (c03 gave up within 20 s: not counted) = 66.67 %
    dict(key="2025-12-01T09:00+00:00", **_metrics(contacts=5, queued=4, handled=4, abandoned=1, outbound=1,
                                                  avg_handle_seconds=125.0, avg_acw_seconds=16.67,
                                                  avg_answer_seconds=22.33, avg_abandon_seconds=5.0,
                                                  service_level=66.67, longest_wait_seconds=40.0)),
    # 10: c06-c10. AHT (140+240)/2 = 190; ASA c10 20 (callback out); SL c10 1 / (1 + c06) = 50 %
    dict(key="2025-12-01T10:00+00:00", **_metrics(contacts=5, queued=4, handled=2, abandoned=1, voicemails=2,
                                                  callbacks=1, avg_handle_seconds=190.0, avg_acw_seconds=20.0,
                                                  avg_answer_seconds=20.0, avg_abandon_seconds=60.0,
                                                  service_level=50.0, longest_wait_seconds=60.0)),
    # 11: c11-c14. c14 started 11:59:30 and belongs here whole (handle 310); SL c14 1 / (1 + c11) = 50 %
    dict(key="2025-12-01T11:00+00:00", **_metrics(contacts=4, queued=3, handled=1, abandoned=1, in_progress=1,
                                                  avg_handle_seconds=310.0, avg_acw_seconds=10.0,
                                                  avg_answer_seconds=15.0, avg_abandon_seconds=30.0,
                                                  service_level=50.0, longest_wait_seconds=30.0)),
]


def test_totals_over_the_three_hours():
    result = compute(RECORDS, since=H9, until=H12)
    assert result == {"total": TOTAL, "groups": []}


@pytest.mark.parametrize("by, expected", [("queue", BY_QUEUE), ("agent", BY_AGENT), ("hour", BY_HOUR)])
def test_groups(by, expected):
    result = compute(RECORDS, since=H9, until=H12, by=by, tz=timezone.utc)
    assert result["groups"] == expected
    assert result["total"] == TOTAL
    for name in ("contacts", "handled", "abandoned", "voicemails", "in_progress"):
        assert sum(g[name] for g in result["groups"]) == TOTAL[name]


def test_hours_in_another_zone_and_other_threshold():
    # In UTC+01:00 the same contacts fall in the 10, 11 and 12 o'clock hours.
    plus_one = timezone(timedelta(hours=1))
    keys = [g["key"] for g in compute(RECORDS, since=H9, until=H12, by="hour", tz=plus_one)["groups"]]
    assert keys == ["2025-12-01T10:00+01:00", "2025-12-01T11:00+01:00", "2025-12-01T12:00+01:00"]
    # SL 30: within 30 s 4 (c02 waited 40) / (5 answered + abandons after 30: c06 only, c11 gave up at 30) = 66.67 %
    assert compute(RECORDS, since=H9, until=H12, sl_seconds=30)["total"]["service_level"] == 66.67
    # SL 0: nobody answered at once; every abandon waited longer than 0 -> 0 / (5 + 3)
    assert compute(RECORDS, since=H9, until=H12, sl_seconds=0)["total"]["service_level"] == 0.0


def test_interval_boundaries():
    # since is inclusive, until exclusive, on initiated_at alone: c00 (08:59:59, ended 09:05) is out, c99 (12:00:00)
    # is out, c14 (11:59:30, ended 12:05:30) is in with its whole handle time.
    assert compute(RECORDS, since=H9 - 1, until=H12)["total"]["contacts"] == 15
    assert compute(RECORDS, since=H9, until=H12 + 0.001)["total"]["contacts"] == 15
    late = compute(RECORDS, since=H12 - 60, until=H12)["total"]
    assert late["contacts"] == 1 and late["avg_handle_seconds"] == 310.0
    assert compute(RECORDS)["total"]["contacts"] == 16  # no bounds: every voice record


def test_empty_interval():
    result = compute(RECORDS, since=H9 + 20_000, until=H9 + 30_000, by="queue")
    assert result == {"total": _metrics(), "groups": []}
    assert compute([], by="hour") == {"total": _metrics(), "groups": []}


def test_single_record_definitions():
    c01, c03, c07, c09 = (next(r for r in RECORDS if r["contact_id"] == cid) for cid in ("c01", "c03", "c07", "c09"))
    assert (handle_seconds(c01), acw_seconds(c01), queue_wait(c01)) == (150, 30, 15)
    assert queue_wait(c03) == 5 and handle_seconds(c03) is None
    assert queue_wait(c07) is None     # left the queue for voicemail: no known dequeue time
    assert queue_wait(c09) is None     # a callback does not keep anyone on the line
    # A record that says when the conversation ended (agent_interaction_end_at) measures talk and ACW from it.
    rec = dict(c01, agent_interaction_end_at=H9 + 125)
    assert (handle_seconds(rec), acw_seconds(rec)) == (150, 50)
    # An ACW end recorded before the end (a clock step) never shortens the handle time.
    assert handle_seconds(dict(c01, after_contact_work_end_at=H9 + 100)) == 120


def test_outcomes_and_bad_arguments():
    outcomes = {r["contact_id"]: outcome_of(r) for r in RECORDS}
    assert outcomes == {"c01": "handled", "c02": "handled", "c03": "abandoned", "c04": "handled", "c05": "handled",
                        "c06": "abandoned", "c07": "voicemail", "c08": "voicemail", "c09": "handled",
                        "c10": "handled", "c11": "abandoned", "c12": "ended_in_flow", "c13": "in_progress",
                        "c14": "handled", "s01": "sms", "c00": "handled", "c99": "abandoned"}
    assert outcome_of({"initiation_method": "CALLBACK", "enqueued_at": 1.0, "ended_at": 2.0}) == "not_connected"
    assert outcome_of({"initiation_method": "OUTBOUND", "ended_at": 2.0}) == "not_connected"
    left_a_callback = {"enqueued_at": 1.0, "ended_at": 2.0, "disconnect_reason": "callback_queued"}
    assert outcome_of(left_a_callback) == "callback_queued"
    summary = summarize([{"enqueued_at": 1.0, "ended_at": 2.0, "disconnect_reason": "callback_queued"}])
    assert summary["abandoned"] == 0 and summary["queued"] == 1
    with pytest.raises(ValueError, match="by must be one of queue, agent, hour"):
        compute(RECORDS, by="line")
    with pytest.raises(ValueError, match="sl_seconds"):
        compute(RECORDS, sl_seconds=-1)


# --- the store's queries ------------------------------------------------------------------------------------

def fill(store: ContactStore, records=RECORDS) -> None:
    for rec in records:
        store.upsert(rec["contact_id"], **{k: v for k, v in rec.items() if k != "contact_id" and v is not None})


@pytest.fixture
def store(tmp_path):
    s = ContactStore(tmp_path / "contacts.db")
    fill(s)
    yield s
    s.close()


def _ids(rows):
    return [r["contact_id"] for r in rows]


def test_metrics_between_a_store_matches_compute(store):
    result = metrics_between(store, H9, H12, by="queue", sl_seconds=20)
    assert result["groups"] == BY_QUEUE and result["total"] == TOTAL
    assert (result["since"], result["until"], result["by"], result["sl_seconds"]) == (H9, H12, "queue", 20)


def test_query_filters(store):
    assert _ids(store.query(since=H9, until=H9 + 3600)) == ["c05", "c04", "c03", "c02", "c01"]   # newest first
    assert _ids(store.query(queue="sales", since=H9, until=H12)) == ["c14", "c11", "c10", "c05", "c04"]
    assert _ids(store.query(agent="bob")) == ["c14", "c09", "c05", "c02"]
    assert _ids(store.query(caller="4930111")) == ["c08"]
    assert _ids(store.query(method="CALLBACK")) == ["c09"]
    assert _ids(store.query(outcome="abandoned", until=H12)) == ["c11", "c06", "c03"]
    assert _ids(store.query(outcome="voicemail")) == _ids(store.query(with_voicemail=True)) == ["c08", "c07"]
    assert _ids(store.query(with_recording=True)) == ["c01"]      # c02's file was removed by retention
    assert "c01" not in _ids(store.query(with_recording=False, limit=None))
    assert _ids(store.query(line="gsm9")) == []
    assert _ids(store.query(queue="support", agent="alice", outcome="handled")) == ["c01", "c00"]
    assert store.count(queue="support") == 8 and store.count() == len(RECORDS)
    everything = _ids(store.query(limit=None))
    assert _ids(store.query(limit=5, offset=3)) == everything[3:8]
    assert store.list(limit=2) == store.query(limit=2)


def test_query_rejects_bad_filters_by_name(store):
    with pytest.raises(ValueError, match="outcome must be one of"):
        store.query(outcome="lost")
    with pytest.raises(ValueError, match="method must be one of"):
        store.query(method="inbound")
    with pytest.raises(ValueError, match="since must be a finite number"):
        store.query(since="yesterday")
    with pytest.raises(ValueError, match="offset"):
        store.query(offset=-1)


_times = st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False))
_record = st.fixed_dictionaries({
    "initiation_method": st.sampled_from(["INBOUND", "OUTBOUND", "CALLBACK", "TRANSFER", None]),
    "initiated_at": _times, "enqueued_at": _times, "connected_to_agent_at": _times, "ended_at": _times,
    "voicemail_status": st.sampled_from([None, "recorded", "no_speech", "hung_up"]),
    "disconnect_reason": st.sampled_from([None, "customer_hung_up", "callback_queued"]),
    "attributes": st.sampled_from([None, {"channel": "SMS"}, {"channel": "VOICE"}, ["SMS"], "\"SMS\""]),
})


@settings(max_examples=25, deadline=None)
@given(st.lists(_record, min_size=1, max_size=25))
def test_outcome_filter_in_sql_agrees_with_outcome_of(records):
    with tempfile.TemporaryDirectory() as tmp:
        s = ContactStore(Path(tmp) / "c.db")
        try:
            for i, rec in enumerate(records):
                s.upsert(f"r{i}", **{k: v for k, v in rec.items() if v is not None})
            expected = {f"r{i}": outcome_of(rec) for i, rec in enumerate(records)}
            found = {}
            for outcome in OUTCOMES:
                for row in s.query(outcome=outcome, limit=None):
                    assert row["contact_id"] not in found
                    found[row["contact_id"]] = outcome
            assert found == expected
        finally:
            s.close()
