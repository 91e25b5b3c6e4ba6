"""Payload bytes of the pump topics from snapshots, events and verdicts, without I/O.

Each builder fills a model of :mod:`gateway.mqtt.models` -- so every published byte has passed
the schema the fleet reads -- and returns its JSON. A value the model refuses (a naive time, a
non-finite number) is a :class:`PayloadError` naming the pump and the payload.

Patient identifiers (design.md §2 inv. 7) never appear in topics. In payloads they appear
only when ``mqtt.include_patient_ids`` is set: the ``patient`` object, and any key of
:data:`PATIENT_ID_KEYS` inside an event's ``detail``, are dropped otherwise. Verdicts are typed
and have no field that could hold one. The pump's raw status text is never published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ValidationError

from drivers.model import Alarm, ChannelSnapshot, PumpIdentity, PumpSnapshot, Quantity
from gateway.druglib.verdicts import Verdict, VerdictSet
from gateway.errors import BadInput
from gateway.events.model import EventKind, PumpEvent
from gateway.mqtt.models import (
    AlarmModel,
    AlarmPayload,
    AlarmPhase,
    Availability,
    AvailabilityPayload,
    ChannelModel,
    ChannelVerdictsModel,
    EventPayload,
    IdentityModel,
    QuantityModel,
    StatePayload,
    VerdictModel,
)

PATIENT_ID_KEYS = frozenset(
    {
        "patient",
        "patient_id",
        "patient_ids",
        "patient_name",
        "patient_identifier",
        "mrn",
        "medical_record_number",
        "visit_number",
        "account_number",
        "date_of_birth",
        "birth_date",
    }
)
_PHASES: dict[EventKind, AlarmPhase] = {
    EventKind.ALARM_ONSET: "onset",
    EventKind.ALARM_CONTINUE: "continue",
    EventKind.ALARM_END: "end",
}


class PayloadError(BadInput):
    """A payload could not be built from the data given (naive time, non-finite number ...)."""

    def __init__(self, pump_id: str, what: str, problems: str) -> None:
        self.pump_id = pump_id
        self.what = what
        self.problems = problems
        super().__init__(f"pump {pump_id}: cannot build the MQTT {what} payload: {problems}")


def build_payload(pump_id: str, what: str, build: Callable[[], BaseModel]) -> bytes:
    """``build()``'s model as JSON bytes; what it refuses is a :class:`PayloadError`."""
    try:
        model = build()
    except (ValidationError, ValueError) as exc:
        raise PayloadError(pump_id, what, str(exc)) from exc
    return model.model_dump_json().encode("utf-8")


def _redact(values: Mapping[str, str], include_patient_ids: bool) -> dict[str, str]:
    if include_patient_ids:
        return dict(values)
    return {k: v for k, v in values.items() if k.lower() not in PATIENT_ID_KEYS}


def _quantity(q: Quantity | None) -> QuantityModel | None:
    if q is None:
        return None
    if not isinstance(q.value, Decimal) or not q.value.is_finite():
        raise ValueError(f"quantity {q.value!r} {q.unit} is not a finite Decimal")
    return QuantityModel(value=format(q.value, "f"), unit=q.unit)


def _alarm(a: Alarm) -> AlarmModel:
    return AlarmModel(code=a.code, kind=a.kind, text=a.text, priority=a.priority.value)


def _channel(c: ChannelSnapshot) -> ChannelModel:
    return ChannelModel(
        channel=c.channel_id,
        state=c.state.value,
        rate=_quantity(c.rate),
        vtbi=_quantity(c.vtbi),
        volume_infused=_quantity(c.volume_infused),
        drug=c.drug,
        concentration=_quantity(c.concentration),
        dose_rate=_quantity(c.dose_rate),
        care_area=c.care_area,
        patient_weight=_quantity(c.patient_weight),
        alarms=[_alarm(a) for a in c.alarms],
    )


def identity_model(i: PumpIdentity) -> IdentityModel:
    return IdentityModel(
        manufacturer=i.manufacturer,
        model=i.model,
        serial_number=i.serial_number,
        firmware=i.firmware,
        drug_library_version=i.drug_library_version,
    )


def _verdict(v: Verdict) -> VerdictModel:
    return VerdictModel(
        kind=v.kind,
        severity=v.severity,
        text=v.text,
        limit_name=v.limit_name,
        value=_quantity(v.value),
        limit=_quantity(v.limit),
        tolerance=_quantity(v.tolerance),
        care_area=v.care_area,
        drug=v.drug,
        entry_id=v.entry_id,
        library_version=v.library_version,
        library_sha256=v.library_sha256,
    )


def _channel_verdicts(channel_id: str, vs: VerdictSet) -> ChannelVerdictsModel:
    return ChannelVerdictsModel(
        channel=channel_id,
        severity=vs.severity,
        library_version=vs.library_version,
        library_sha256=vs.library_sha256,
        verdicts=[_verdict(v) for v in vs],
    )


def event_message_id(event: PumpEvent) -> str:
    """A deterministic id, so re-deriving the same event yields the same id (idempotent consumers)."""
    parts = (
        event.pump_id,
        event.kind.value,
        event.occurred_at.isoformat(),
        event.channel_id or "",
        event.alert_instance_id or "",
        event.alarm.code if event.alarm else "",
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def state_payload(
    snapshot: PumpSnapshot,
    *,
    verdicts: Mapping[str, VerdictSet] | None,
    include_patient_ids: bool,
    patient: Mapping[str, str] | None = None,
) -> bytes:
    """``verdicts``: the drug-library verdicts of the snapshot's programs, by channel id."""

    def build() -> StatePayload:
        return StatePayload(
            pump=snapshot.pump_id,
            received_at=snapshot.received_at,
            device_time=snapshot.device_time,
            identity=identity_model(snapshot.identity),
            channels=[_channel(c) for c in snapshot.channels],
            verdicts=[_channel_verdicts(cid, vs) for cid, vs in (verdicts or {}).items()],
            patient=dict(patient) if (patient and include_patient_ids) else None,
        )

    return build_payload(snapshot.pump_id, "state", build)


def _event_channel(event: PumpEvent) -> ChannelModel | None:
    if event.snapshot is None or event.channel_id is None:
        return None
    for c in event.snapshot.channels:
        if c.channel_id == event.channel_id:
            return _channel(c)
    return None


def event_payload(event: PumpEvent, *, include_patient_ids: bool = False, message_id: str | None = None) -> bytes:
    if event.is_alarm:
        raise PayloadError(event.pump_id, "event", f"{event.kind.value} is an alarm: use alarm_payload")

    def build() -> EventPayload:
        return EventPayload(
            message_id=message_id or event_message_id(event),
            pump=event.pump_id,
            kind=event.kind.value,
            occurred_at=event.occurred_at,
            channel=event.channel_id,
            channel_state=_event_channel(event),
            previous_identity=identity_model(event.previous_identity) if event.previous_identity else None,
            detail=_redact(event.detail, include_patient_ids),
        )

    return build_payload(event.pump_id, "event", build)


def alarm_payload(event: PumpEvent, *, include_patient_ids: bool = False, message_id: str | None = None) -> bytes:
    if not event.is_alarm:
        raise PayloadError(event.pump_id, "alarm", f"{event.kind.value} is not an alarm: use event_payload")

    def build() -> AlarmPayload:
        return AlarmPayload(
            message_id=message_id or event_message_id(event),
            pump=event.pump_id,
            phase=_PHASES[event.kind],
            alert_instance_id=event.alert_instance_id,
            occurred_at=event.occurred_at,
            channel=event.channel_id,
            alarm=_alarm(event.alarm) if event.alarm else None,
            detail=_redact(event.detail, include_patient_ids),
        )

    return build_payload(event.pump_id, "alarm", build)


def availability_payload(pump_id: str, availability: Availability, *, since: datetime) -> bytes:
    return build_payload(
        pump_id, "availability", lambda: AvailabilityPayload(pump=pump_id, availability=availability, since=since)
    )
