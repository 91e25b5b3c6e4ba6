"""Builders for the snapshots the event tests feed in (one pump, times in seconds from T0)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity

PUMP = "icu3-bed4"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
IDENTITY = PumpIdentity("New Era", "NE-1000", serial_number="SN-100", firmware="3.928", drug_library_version="L7")
OCCLUSION = Alarm("OCC", "occlusion", "Occlusion downstream")
AIR = Alarm("AIR", "air_in_line", "Air in line")
BATTERY = Alarm("BAT", "battery_low", "Battery low", AlarmPriority.MEDIUM)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ml_h(value: str | int) -> Quantity:
    return Quantity(Decimal(value), "mL/h")


def ml(value: str | int) -> Quantity:
    return Quantity(Decimal(value), "mL")


def channel(
    state: ChannelState = ChannelState.INFUSING,
    *,
    channel_id: str = "A",
    rate: str | None = "10",
    vtbi: str | None = "100",
    infused: str | None = "0",
    drug: str | None = "heparin",
    alarms: tuple[Alarm, ...] = (),
) -> ChannelSnapshot:
    return ChannelSnapshot(
        channel_id=channel_id,
        state=state,
        rate=None if rate is None else ml_h(rate),
        vtbi=None if vtbi is None else ml(vtbi),
        volume_infused=None if infused is None else ml(infused),
        drug=drug,
        alarms=alarms,
    )


def snap(
    seconds: float,
    *channels: ChannelSnapshot,
    identity: PumpIdentity = IDENTITY,
    device_offset_s: float | None = None,
    latency_s: float = 0.0,
) -> PumpSnapshot:
    """A reply produced at ``T0+seconds`` (true time), received ``latency_s`` later.

    ``device_offset_s`` is how far the pump's clock is ahead of the gateway's (None: the
    protocol reports no device time).
    """
    produced = at(seconds)
    device_time = None if device_offset_s is None else produced + timedelta(seconds=device_offset_s)
    return PumpSnapshot(
        pump_id=PUMP,
        identity=identity,
        channels=channels,
        received_at=produced + timedelta(seconds=latency_s),
        device_time=device_time,
    )


def counter_ids(prefix: str = "alert") -> Callable[[], str]:
    """A deterministic instance-id generator for readable assertions."""
    count = 0

    def next_id() -> str:
        nonlocal count
        count += 1
        return f"{prefix}-{count}"

    return next_id
