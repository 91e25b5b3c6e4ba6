"""A pump's durable clinical state: what its tracker knows and the outside world was told.

Kept in the outbox database (table ``pump_state``) and committed in the same transaction as
the messages that told it (design.md §2 inv. 9), so after a restart -- SIGTERM, SIGKILL or a
power cut -- the tracker continues from exactly what was sent: an active alarm keeps its
alert instance id (PCD-04 onset OBR-3), a running infusion is not started again, a pump that
was reported offline is reported online when it answers.

Format: JSON, versioned by ``STATE_VERSION`` (stored beside it in the row). Contents:

* ``identity``: the pump's known identity (manufacturer, model, serial, firmware, library);
* ``channels``: the last known delivery state and program of each channel (no volume:
  it changes every poll and tells no story);
* ``alarms``: channel, code, kind, text, priority, latched, instance id, onset time, last
  report time and last phase sent;
* ``lost``: when and why communication was reported lost, or null;
* ``last_time``: the last event time (event times of a pump never go backwards);
* ``extra``: the pipeline's own facts (the last PCD-01 time).

A row that cannot be read -- not JSON, a missing field, a version newer than this pumpgw --
raises :class:`StateRowError` naming the pump; the caller logs it and the pump starts from
"unknown" (a baseline, as at first start), never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, Quantity
from gateway.events.alarms import ActiveAlarm, AlarmKey
from gateway.events.errors import EventError

STATE_VERSION = 1
_QUANTITIES = ("rate", "vtbi", "concentration", "dose_rate", "patient_weight")  # also spelled out in _decode
_IDENTITY = ("manufacturer", "model", "serial_number", "firmware", "drug_library_version")


class StateRowError(EventError):
    """A pump's stored state row cannot be used (unreadable, or written by a newer pumpgw)."""

    def __init__(self, pump_id: str, reason: str) -> None:
        self.pump_id = pump_id
        self.reason = reason
        super().__init__(f"pump {pump_id}: stored clinical state refused: {reason}")


@dataclass(slots=True)
class TrackerState:
    identity: PumpIdentity | None = None
    known: dict[str, ChannelSnapshot] = field(default_factory=dict)
    alarms: list[tuple[AlarmKey, ActiveAlarm]] = field(default_factory=list)
    lost: tuple[datetime, str] | None = None
    last_time: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _q(q: Quantity | None) -> list[str] | None:
    return None if q is None else [str(q.value), q.unit]


def _channel(ch: ChannelSnapshot) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ch.channel_id, "state": ch.state.value}
    for name in _QUANTITIES:
        out[name] = _q(getattr(ch, name))
    out["drug"] = ch.drug
    out["care_area"] = ch.care_area
    return out


def state_dict(state: TrackerState) -> dict[str, Any]:
    """The JSON-ready form; equal dicts mean nothing worth telling changed."""
    identity = state.identity
    return {
        "identity": None if identity is None else {n: getattr(identity, n) for n in _IDENTITY},
        "channels": [_channel(ch) for ch in state.known.values()],
        "alarms": [
            {
                "channel": key[0],
                "code": key[1],
                "kind": a.alarm.kind,
                "text": a.alarm.text,
                "priority": a.alarm.priority.value,
                "latched": a.alarm.latched,
                "instance_id": a.instance_id,
                "onset_at": a.onset_at.isoformat(),
                "reported_at": a.reported_at.isoformat(),
                "phase": a.phase,
            }
            for key, a in state.alarms
        ],
        "lost": None if state.lost is None else [state.lost[0].isoformat(), state.lost[1]],
        "extra": dict(state.extra),
    }


def encode_state(state: TrackerState, *, with_last_time: bool = True) -> str:
    """The row's JSON text; without ``last_time`` it serves as "did anything worth telling change"."""
    data = state_dict(state)
    if with_last_time:
        data["last_time"] = None if state.last_time is None else state.last_time.isoformat()
    return json.dumps(data, separators=(",", ":"))


def decode_state(pump_id: str, version: int, text: str) -> TrackerState:
    """Parse a stored row; raises :class:`StateRowError` naming the pump and what is wrong."""
    if version > STATE_VERSION:
        raise StateRowError(pump_id, f"format version {version} is newer than this pumpgw's {STATE_VERSION}")
    if version < 1:
        raise StateRowError(pump_id, f"unknown format version {version}")
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("top level is not an object")
        return _decode(data)
    except StateRowError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation) as exc:
        raise StateRowError(pump_id, f"{type(exc).__name__}: {exc}") from None


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return value


def _quantity(raw: Any) -> Quantity | None:
    if raw is None:
        return None
    value, unit = raw
    if not isinstance(unit, str):
        raise TypeError(f"unit {unit!r} is not a string")
    return Quantity(Decimal(str(value)), unit)


def _opt_str(raw: Any, what: str) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise TypeError(f"{what} {raw!r} is not a string")
    return raw


def _decode(data: dict[str, Any]) -> TrackerState:
    state = TrackerState()
    identity = data["identity"]
    if identity is not None:
        fields = {n: _opt_str(identity.get(n), n) for n in _IDENTITY}
        manufacturer, model = fields.pop("manufacturer"), fields.pop("model")
        if manufacturer is None or model is None:
            raise ValueError("identity without manufacturer or model")
        state.identity = PumpIdentity(manufacturer, model, **fields)
    for raw in data["channels"]:
        channel = ChannelSnapshot(
            channel_id=str(raw["id"]),
            state=ChannelState(raw["state"]),
            drug=_opt_str(raw.get("drug"), "drug"),
            care_area=_opt_str(raw.get("care_area"), "care_area"),
            rate=_quantity(raw.get("rate")),
            vtbi=_quantity(raw.get("vtbi")),
            concentration=_quantity(raw.get("concentration")),
            dose_rate=_quantity(raw.get("dose_rate")),
            patient_weight=_quantity(raw.get("patient_weight")),
        )
        state.known[channel.channel_id] = channel
    for raw in data["alarms"]:
        alarm = Alarm(
            code=str(raw["code"]),
            kind=str(raw["kind"]),
            text=str(raw["text"]),
            priority=AlarmPriority(raw["priority"]),
            latched=bool(raw["latched"]),
        )
        if raw["phase"] not in ("start", "continue"):
            raise ValueError(f"alarm phase {raw['phase']!r}")
        active = ActiveAlarm(
            str(raw["instance_id"]),
            alarm,
            onset_at=_time(raw["onset_at"]),
            reported_at=_time(raw["reported_at"]),
            phase=raw["phase"],
        )
        state.alarms.append(((str(raw["channel"]), alarm.code), active))
    lost = data["lost"]
    if lost is not None:
        state.lost = (_time(lost[0]), str(lost[1]))
    last_time = data.get("last_time")
    state.last_time = None if last_time is None else _time(last_time)
    extra = data.get("extra") or {}
    state.extra = {str(k): str(v) for k, v in extra.items()}
    return state
