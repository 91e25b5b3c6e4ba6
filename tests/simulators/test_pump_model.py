"""The shared simulated infusion pump: delivery over time, completion, alarms, clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.pump_model import DeliveryState, DeviceIdentity, Program, PumpModelError, SimulatedPump

IDENTITY = DeviceIdentity("Acme", "Infuse 1", "SN-1", "1.0", library_version="2024.1", care_area="ICU")


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def pump(clock: FakeClock, rate: str = "60", vtbi: str | None = "10", **kwargs: object) -> SimulatedPump:
    program = Program(
        Decimal(rate),
        None if vtbi is None else Decimal(vtbi),
        drug="dopamine",
        concentration=Decimal("1.6"),
        concentration_unit="mg/mL",
        dose_rate=Decimal("5"),
        dose_unit="ug/kg/min",
        patient_weight_kg=Decimal("80"),
    )
    return SimulatedPump(IDENTITY, program=program, clock=clock, **kwargs)


def test_volume_is_rate_times_time():
    clock = FakeClock()
    p = pump(clock, running=True)
    clock.now += 300
    assert p.volume_infused_ml == Decimal("5")
    assert p.state is DeliveryState.INFUSING and p.current_rate_ml_h == Decimal("60")


def test_acceleration_scales_model_time():
    clock = FakeClock()
    p = pump(clock, running=True, acceleration=60, vtbi=None)
    clock.now += 60  # one real minute = one model hour
    assert p.volume_infused_ml == Decimal("60")


def test_completion_falls_back_to_kvo_with_an_end_of_infusion_alarm():
    clock = FakeClock()
    p = pump(clock, running=True, kvo_rate_ml_h=Decimal("1"))
    clock.now += 600 + 3600  # 10 mL done after 600 s, then one hour of KVO
    assert p.state is DeliveryState.KVO and p.completed
    assert p.volume_infused_ml == Decimal("11")
    assert [a.kind for a in p.alarms] == ["end_of_infusion"]
    assert p.alarms[0].since_s == pytest.approx(600)
    assert p.remaining_ml == 0


def test_syringe_pump_just_stops_at_completion():
    clock = FakeClock()
    p = pump(clock, running=True, kvo_on_complete=False, alarm_on_complete=False)
    clock.now += 3600
    assert p.state is DeliveryState.STOPPED and p.volume_infused_ml == Decimal("10")
    assert p.alarms == ()


def test_pause_stops_delivery_and_resume_continues_it():
    clock = FakeClock()
    p = pump(clock, running=True)
    clock.now += 60
    p.pause()
    clock.now += 300
    assert p.volume_infused_ml == Decimal("1") and p.state is DeliveryState.PAUSED
    p.resume()
    clock.now += 60
    assert p.volume_infused_ml == Decimal("2")


def test_titration_by_rate_and_by_dose_changes_delivery_from_that_moment():
    clock = FakeClock()
    p = pump(clock, running=True, vtbi=None)
    clock.now += 60
    p.titrate(rate_ml_h=Decimal("120"))
    assert p.program.dose_rate == Decimal("10")
    clock.now += 60
    assert p.volume_infused_ml == Decimal("3")
    p.titrate(dose_rate=Decimal("5"))
    assert p.program.rate_ml_h == Decimal("60")


def test_stopping_alarm_stops_delivery_and_blocks_start_until_acknowledged():
    clock = FakeClock()
    p = pump(clock, running=True)
    clock.now += 60
    p.set_alarm("occlusion")
    clock.now += 60
    assert p.state is DeliveryState.STOPPED and p.volume_infused_ml == Decimal("1")
    with pytest.raises(PumpModelError, match="occlusion"):
        p.start()
    p.acknowledge_alarm("occlusion")
    p.start()
    p.clear_alarm("occlusion")
    assert p.alarms == () and p.state is DeliveryState.INFUSING


def test_advisory_alarm_does_not_stop_delivery():
    clock = FakeClock()
    p = pump(clock, running=True)
    p.set_alarm("battery_low")
    assert p.state is DeliveryState.INFUSING


def test_unknown_alarm_kind_is_refused():
    with pytest.raises(PumpModelError, match="unknown alarm kind"):
        pump(FakeClock()).set_alarm("gremlins")


def test_scheduled_alarm_fires_at_its_model_time_even_if_looked_at_later():
    clock = FakeClock()
    p = pump(clock, running=True, vtbi=None)
    p.schedule_alarm(120.0, "air_in_line")
    clock.now += 1000
    assert p.volume_infused_ml == Decimal("2")  # delivery stopped by the alarm at 120 s
    assert p.alarms[0].since_s == 120.0


def test_device_clock_drifts_and_jumps():
    clock = FakeClock()
    wall = datetime(2026, 1, 1, tzinfo=UTC)
    p = SimulatedPump(IDENTITY, clock=clock, wall_clock=lambda: wall, clock_drift_ppm=100)
    clock.now += 10_000
    assert p.device_time() == wall + timedelta(seconds=1)
    p.jump_clock(-3600)
    assert p.device_time() == wall + timedelta(seconds=1 - 3600)


def test_start_without_program_is_refused_and_state_is_idle():
    p = SimulatedPump(IDENTITY, clock=FakeClock())
    assert p.state is DeliveryState.IDLE
    with pytest.raises(PumpModelError):
        p.start()


def test_restart_after_completion_begins_a_new_run():
    clock = FakeClock()
    p = pump(clock, running=True, kvo_on_complete=False)
    clock.now += 3600
    p.start()
    clock.now += 300
    assert p.volume_infused_ml == Decimal("15") and p.state is DeliveryState.INFUSING
    assert p.alarms == ()


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0, max_value=2000), min_size=1, max_size=20))
def test_volume_never_decreases_and_never_exceeds_vtbi_without_kvo(steps):
    clock = FakeClock()
    p = pump(clock, running=True, kvo_on_complete=False)
    last = Decimal(0)
    for step in steps:
        clock.now += step
        volume = p.volume_infused_ml
        assert last <= volume <= Decimal("10")
        last = volume


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0, max_value=500), min_size=1, max_size=10))
def test_looking_often_or_rarely_gives_the_same_volume(steps):
    often, rarely = FakeClock(), FakeClock()
    a, b = pump(often, running=True), pump(rarely, running=True)
    for step in steps:
        often.now += step
        _ = a.volume_infused_ml  # reading it advances the model
    rarely.now += sum(steps)
    assert abs(a.volume_infused_ml - b.volume_infused_ml) < Decimal("1e-6")
