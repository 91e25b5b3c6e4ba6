"""Property tests: any snapshot or event encodes to a message that passes the checker and
parses back to the same values with two independent parsers (``hl7`` and hl7apy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message as hl7apy_parse
from hypothesis import given, settings
from hypothesis import strategies as st

from common.pcd import mdc
from common.pcd.conformance import check_message
from common.pcd.parse import parse_message, read_alerts
from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.events.model import EventKind, PumpEvent
from gateway.hl7 import PCD10_EVENTS, PatientIdentity, encode_pcd01, encode_pcd04, encode_pcd10
from gateway.hl7.er7 import escape
from tests.gateway.hl7.conftest import make_context

ODD = "|^~\\&é€日 \t\r\nabc-/()[]%"
texts = st.one_of(
    st.text(alphabet=st.sampled_from(ODD), max_size=20),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
)
decimals = st.one_of(
    st.sampled_from(
        [
            Decimal("0"),
            Decimal("0.0"),
            Decimal("1E+30"),
            Decimal("123456789012345.678"),
            Decimal("0.000001"),
            Decimal("-0.00"),
        ]
    ),
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False),
)
units = st.sampled_from([*mdc.UNITS, "[iU]/mL", "mmol/h", "mL/min"])
quantities = st.builds(Quantity, decimals, units)
maybe_q = st.none() | quantities
zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])
aware = st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)

channels = st.builds(
    ChannelSnapshot,
    channel_id=texts,
    state=st.sampled_from(list(ChannelState)),
    rate=maybe_q,
    vtbi=maybe_q,
    volume_infused=maybe_q,
    drug=st.none() | texts,
    concentration=maybe_q,
    dose_rate=maybe_q,
    care_area=st.none() | texts,
    patient_weight=maybe_q,
)
snapshots = st.builds(
    PumpSnapshot,
    pump_id=st.just("bed07-a"),
    identity=st.builds(
        PumpIdentity, texts, texts, serial_number=st.none() | texts, drug_library_version=st.none() | texts
    ),
    channels=st.lists(channels, min_size=1, max_size=3).map(tuple),
    received_at=aware,
    device_time=st.none() | st.datetimes() | aware,
)


def _hl7_rows(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(OBX-4, REFID) -> (unescaped OBX-5, UCUM unit) read with the independent ``hl7`` package."""
    msg = hl7.parse(text)
    rows = {}
    for seg in msg.segments("OBX"):
        refid = str(seg[3][0][1])
        units = seg[6][0] if str(seg[6]) else None
        ucum = str(units[3]) if units is not None and len(units) > 5 else (str(units[0]) if units else "")
        rows[(str(seg[4]), refid)] = (msg.unescape(str(seg[5])), msg.unescape(ucum))
    return rows


def _hl7apy_rows(text: str) -> dict[str, tuple[str, str]]:
    """OBX-4 -> (OBX-3.2, escaped OBX-5) read with hl7apy (it does not unescape)."""
    msg = hl7apy_parse(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    return {c.obx_4.to_er7(): (c.obx_3.cwe_2.to_er7(), c.obx_5.to_er7()) for c in msg.children if c.name == "OBX"}


def _as_hl7apy_shows(er7: str) -> str | None:
    """What hl7apy 1.3.5 renders for an escaped value, or None where it cannot be predicted.

    hl7apy does not know the \\Xhh\\ hex escape (control characters) and re-escapes it in
    ways that depend on its neighbours; such values are checked by the independent `hl7`
    parser above only.
    """
    return None if "\\X" in er7 else er7


_QUANTITIES = (
    ("rate", "MDC_FLOW_FLUID_PUMP"),
    ("dose_rate", "MDC_RATE_DOSE"),
    ("vtbi", "MDC_VOL_FLUID_TBI"),
    ("volume_infused", "MDC_VOL_FLUID_DELIV_TOTAL"),
    ("concentration", "MDC_CONC_DRUG"),
    ("patient_weight", "MDC_ATTR_PT_WEIGHT"),
)


def _expected_channel(channel: ChannelSnapshot, n: int) -> dict[str, tuple[object, str]]:
    expected: dict[str, tuple[object, str]] = {}
    for attr, refid in _QUANTITIES:
        q = getattr(channel, attr)
        if q is not None:
            expected[refid] = (q.value, q.unit)
    expected["MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL"] = (channel.channel_id.strip() or str(n), "")
    if channel.drug and channel.drug.strip():
        expected["MDC_DRUG_NAME_LABEL"] = (channel.drug.strip(), "")
    care_area = (channel.care_area or "").strip() or "Crit Care"  # else the configured care area
    expected["MDC_PUMP_DRUG_LIBRARY_CARE_AREA"] = (care_area, "")
    return expected


def _actual_channel(rows, n: int) -> dict[str, tuple[object, str]]:
    wanted = {refid for _, refid in _QUANTITIES} | {
        "MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL",
        "MDC_DRUG_NAME_LABEL",
        "MDC_PUMP_DRUG_LIBRARY_CARE_AREA",
    }
    actual = {}
    for (sub, refid), (value, unit) in rows.items():
        if sub.startswith(f"1.{n}.2.") and refid in wanted:
            numeric = refid in {r for _, r in _QUANTITIES}
            actual[refid] = (Decimal(value) if numeric else value, unit)
    return actual


@settings(max_examples=30, deadline=None)
@given(snapshot=snapshots)
def test_pcd01_of_any_snapshot_passes_the_checker_and_parses_back_to_the_same_values(snapshot):
    _control_id, message = encode_pcd01(snapshot, make_context(), pump_id="bed07-a")
    assert check_message(message) == []
    text = message.decode("utf-8")
    assert (parse_message(message).msh.field(18) == "UNICODE UTF-8") == (not text.isascii())
    rows = _hl7_rows(text)
    for n, channel in enumerate(snapshot.channels, start=1):
        assert _actual_channel(rows, n) == _expected_channel(channel, n)
    apy = _hl7apy_rows(text)
    assert len(apy) == len(rows)
    for n, channel in enumerate(snapshot.channels, start=1):
        if channel.drug and channel.drug.strip():
            drug_rows = [v for k, v in apy.items() if k.startswith(f"1.{n}.2.") and v[0] == "MDC_DRUG_NAME_LABEL"]
            assert len(drug_rows) == 1
            shown = _as_hl7apy_shows(escape(channel.drug))
            if shown is not None:
                assert drug_rows == [("MDC_DRUG_NAME_LABEL", shown)]


@settings(max_examples=40, deadline=None)
@given(snapshot=snapshots, kind=st.sampled_from(list(PCD10_EVENTS)), when=aware, which=st.integers(0, 3))
def test_pcd10_of_any_event_passes_the_checker_and_names_its_event_and_source(snapshot, kind, when, which):
    channel = snapshot.channels[which] if which < len(snapshot.channels) else None
    # A channel id that is not unique in the snapshot resolves to the first match.
    index = next((i for i, c in enumerate(snapshot.channels, 1) if channel and c.channel_id == channel.channel_id), 0)
    event = PumpEvent(kind, "bed07-a", when, channel_id=channel.channel_id if channel else None, snapshot=snapshot)
    _control_id, message = encode_pcd10(event, make_context())
    assert check_message(message) == []
    rows = _hl7_rows(message.decode("utf-8"))
    cond = [v for (sub, refid), v in rows.items() if refid == "MDC_ATTR_EVT_COND"]
    source = [v for (sub, refid), v in rows.items() if refid == "MDC_ATTR_EVT_SOURCE"]
    assert [c[0].split("^")[1] for c in cond] == [PCD10_EVENTS[kind]]
    assert source == [(f"1.{index}.2.0" if channel else "1.0.0.0", "")]
    vmds = {sub.split(".")[1] for sub, _ in rows if sub.split(".")[1] != "0"}
    assert vmds == ({str(index)} if channel else set())


@settings(max_examples=40, deadline=None)
@given(
    snapshot=snapshots,
    kind=st.sampled_from([EventKind.ALARM_ONSET, EventKind.ALARM_CONTINUE, EventKind.ALARM_END]),
    alarm=st.builds(
        Alarm,
        texts,
        st.sampled_from(["occlusion", "air_in_line", "battery_low", "weird"]),
        texts,
        st.sampled_from(list(AlarmPriority)),
    ),
    instance=st.text(alphabet=st.sampled_from("AZ09-_&^|"), min_size=1, max_size=12),
    when=aware,
)
def test_pcd04_of_any_alarm_carries_seven_facets_and_reads_back(snapshot, kind, alarm, instance, when):
    channel_id = snapshot.channels[0].channel_id
    event = PumpEvent(
        kind, "bed07-a", when, channel_id=channel_id, snapshot=snapshot, alarm=alarm, alert_instance_id=instance
    )
    _control_id, message = encode_pcd04(event, make_context())
    assert check_message(message) == []
    parsed = parse_message(message)
    (alert,) = read_alerts(parsed)
    assert set(alert.facets) == {1, 2, 3, 4, 5, 6, 7}
    assert alert.phase == {"alarm_onset": "start", "alarm_continue": "continue", "alarm_end": "end"}[kind]
    assert alert.priority == {"high": "PH", "medium": "PM", "low": "PL", "advisory": "PN"}[alarm.priority]
    msg = hl7.parse(message.decode("utf-8"))
    obr = msg.segment("OBR")
    reference = obr[3] if kind is EventKind.ALARM_ONSET else obr[29][0][1]
    assert msg.unescape(str(reference).split("^" if kind is EventKind.ALARM_ONSET else "&")[0]) == instance.strip()


@settings(max_examples=30, deadline=None)
@given(identifier=texts.filter(str.strip), family=texts, given_name=texts)
def test_an_associated_patient_reads_back_and_unknown_uses_the_tf_convention(identifier, family, given_name):
    from tests.gateway.hl7.conftest import one_channel_pump

    known = make_context(
        patients={"bed07-a": PatientIdentity(identifier, "HOSP", family_name=family, given_name=given_name)}
    )
    _cid, message = encode_pcd01(one_channel_pump(), known, pump_id="bed07-a")
    assert check_message(message) == []
    msg = hl7.parse(message.decode("utf-8"))
    pid = msg.segment("PID")
    assert msg.unescape(str(pid[3][0][0])) == identifier.strip()
    assert msg.unescape(str(pid[5][0][0])) == family.strip()
    assert str(pid[31]) == "N"
    _cid, anonymous = encode_pcd01(one_channel_pump(), make_context(), pump_id="bed07-a")
    pid = parse_message(anonymous).named("PID")[0]
    assert (pid.field(3), pid.raw_field(5), pid.field(31)) == ("", "^^^^^^U", "Y")
