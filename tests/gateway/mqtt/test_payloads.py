"""Payload encoders, topic names, queue envelopes and backoff: pure functions, checked broadly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.model import ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.backoff import Backoff
from gateway.druglib.verdicts import Severity, Verdict, VerdictKind, VerdictSet
from gateway.events.model import EventKind, PumpEvent
from gateway.mqtt.envelope import EnvelopeError, decode_envelope, encode_envelope
from gateway.mqtt.gateway_payloads import inventory_payload
from gateway.mqtt.models import AlarmPayload, EventPayload, StatePayload
from gateway.mqtt.payloads import (
    PATIENT_ID_KEYS,
    PayloadError,
    alarm_payload,
    event_payload,
    state_payload,
)
from gateway.mqtt.topics import Topics
from tests.gateway.mqtt.conftest import T0, event, snapshot

decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=10**9, places=4)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))]),
)


@given(rate=decimals, at=aware)
def test_state_payload_keeps_the_pumps_exact_digits_and_time_offset(rate: Decimal, at: datetime):
    snap = PumpSnapshot(
        "p1",
        PumpIdentity("Acme", "X1"),
        (ChannelSnapshot("A", ChannelState.INFUSING, rate=Quantity(rate, "mL/h")),),
        received_at=at,
    )
    data = json.loads(state_payload(snap, verdicts=None, include_patient_ids=False))
    StatePayload.model_validate(data)
    assert Decimal(data["channels"][0]["rate"]["value"]) == rate
    assert datetime.fromisoformat(data["received_at"]) == at


def test_a_naive_time_is_refused_with_the_pump_named():
    snap = snapshot(at=datetime(2026, 1, 1, 12, 0))
    with pytest.raises(PayloadError, match="pump bed07-a: cannot build the MQTT state payload"):
        state_payload(snap, verdicts=None, include_patient_ids=False)


def test_a_non_finite_quantity_is_refused():
    snap = PumpSnapshot(
        "p1",
        PumpIdentity("A", "B"),
        (ChannelSnapshot("1", ChannelState.INFUSING, rate=Quantity(Decimal("NaN"), "mL/h")),),
        T0,
    )
    with pytest.raises(PayloadError, match="not a finite Decimal"):
        state_payload(snap, verdicts=None, include_patient_ids=False)


@given(
    detail=st.dictionaries(
        st.sampled_from(sorted(PATIENT_ID_KEYS) + ["seq", "reason", "Patient_ID"]), st.text(max_size=8)
    ),
    include=st.booleans(),
)
def test_patient_identifiers_leave_payloads_only_when_configured(detail: dict[str, str], include: bool):
    ev = PumpEvent(EventKind.DELIVERY_STOP, "p1", T0, detail=detail)
    data = json.loads(event_payload(ev, include_patient_ids=include))
    EventPayload.model_validate(data)
    if include:
        assert data["detail"] == detail
    else:
        assert not {k.lower() for k in data["detail"]} & PATIENT_ID_KEYS
        assert {k: v for k, v in detail.items() if k.lower() not in PATIENT_ID_KEYS} == data["detail"]


def test_state_verdicts_are_typed_and_the_patient_object_is_redacted_unless_configured():
    """Verdicts are typed models (no free-form keys that could carry a patient id); the JSON is
    what the verdict's own ``to_dict`` said before they were typed."""
    sha = "ab" * 32
    verdict = Verdict(
        VerdictKind.ABOVE_SOFT_MAX,
        Severity.WARNING,
        "dose above the soft maximum",
        "L7",
        sha,
        limit_name="dose.soft_max",
        value=Quantity(Decimal("12.5"), "mL/h"),
        limit=Quantity(Decimal("10"), "mL/h"),
        drug="heparin",
        care_area="ICU",
    )
    verdicts = {"1": VerdictSet((verdict,), "L7", sha)}
    patient = {"patient_id": "PID-1"}
    off = json.loads(state_payload(snapshot(), verdicts=verdicts, include_patient_ids=False, patient=patient))
    on = json.loads(state_payload(snapshot(), verdicts=verdicts, include_patient_ids=True, patient=patient))
    assert off["verdicts"] == on["verdicts"] == [{"channel": "1", **verdicts["1"].to_dict()}]
    assert StatePayload.model_validate(off).verdicts[0].verdicts[0].kind is VerdictKind.ABOVE_SOFT_MAX
    assert off["patient"] is None and on["patient"] == patient


def test_alarm_payload_carries_phase_instance_and_condition_and_events_refuse_alarms():
    data = json.loads(alarm_payload(event(3, alarm=True)))
    AlarmPayload.model_validate(data)
    assert (data["phase"], data["alert_instance_id"], data["alarm"]["kind"]) == ("onset", "a3", "occlusion")
    with pytest.raises(PayloadError, match="use alarm_payload"):
        event_payload(event(3, alarm=True))
    with pytest.raises(PayloadError, match="use event_payload"):
        alarm_payload(event(3))


def test_message_ids_are_stable_for_the_same_event_and_differ_between_events():
    a, b = json.loads(event_payload(event(1))), json.loads(event_payload(event(1)))
    c = json.loads(event_payload(event(2)))
    assert a["message_id"] == b["message_id"] != c["message_id"]


def test_inventory_lists_every_configured_pump_sorted_even_before_it_answers():
    data = json.loads(
        inventory_payload(
            site="s",
            gateway="g",
            identities={"b": None, "a": PumpIdentity("Acme", "X", firmware="2.1")},
            last_seen={"a": T0},
            generated_at=T0,
            central_library_version="L8",
        )
    )
    assert [(p["pump"], p["firmware"], p["last_seen"]) for p in data["pumps"]] == [
        ("a", "2.1", "2026-03-01T12:00:00Z"),
        ("b", None, None),
    ]
    assert data["central_library_version"] == "L8"


@pytest.mark.parametrize("bad", ["a/b", "+", "x#", "", "a\x00"])
def test_topic_levels_cannot_contain_wildcards_or_separators(bad: str):
    with pytest.raises(ValueError, match="cannot be an MQTT topic level"):
        Topics("pumpgw/v1", "site", "gw").state(bad)


def test_topic_tree_layout():
    t = Topics("pumpgw/v1", "s1", "g1")
    assert t.status == "pumpgw/v1/s1/g1/status"
    assert t.alarms("p") == "pumpgw/v1/s1/g1/pumps/p/alarms"
    assert (t.rebirth, t.rebirth_all) == ("pumpgw/v1/s1/g1/rebirth", "pumpgw/v1/rebirth")


@given(topic=st.text(min_size=1).filter(lambda s: not set(s) & set("\x00+#")), payload=st.binary())
def test_envelopes_round_trip(topic: str, payload: bytes):
    assert decode_envelope(encode_envelope(topic, payload)) == (topic, payload)


@given(data=st.binary())
def test_decoding_arbitrary_bytes_gives_an_envelope_or_a_named_error(data: bytes):
    try:
        topic, payload = decode_envelope(data, 7)
    except EnvelopeError as exc:
        assert exc.message_id == 7
    else:
        assert encode_envelope(topic, payload) == data


@settings(max_examples=200)
@given(
    initial=st.floats(0.001, 10),
    factor=st.floats(1, 1000),
    draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=80),
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling_and_never_above_the_cap(initial, factor, draws):
    it = iter(draws)
    b = Backoff(initial, initial * factor, rand=lambda: next(it))
    for n, r in enumerate(draws):
        d = b.next_delay()
        assert 0 <= d <= min(initial * factor, initial * 2**n) + 1e-9
        assert d == pytest.approx(b.ceiling(n) * r)
    assert b.longest() == initial * factor
