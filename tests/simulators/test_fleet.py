"""The demo fleet: three NE-1000 beds on their own ptys, each doing something visible."""

from __future__ import annotations

from decimal import Decimal

from drivers.model import ChannelState
from drivers.ne1000.client import Ne1000Driver
from drivers.transport import open_serial
from simulators.fleet import PtyFleet, demo_pumps
from simulators.pump_model import DeliveryState


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_demo_pumps_complete_and_alarm_on_their_schedule():
    clock = FakeClock()
    pumps = demo_pumps(clock=clock)
    assert set(pumps) == {"bed01", "bed02", "bed03"}
    assert all(p.state is DeliveryState.INFUSING for p in pumps.values())
    assert pumps["bed01"].program.drug == "dopamine" and pumps["bed01"].program.concentration == Decimal("1.6")
    clock.now = 59
    assert pumps["bed02"].state is DeliveryState.INFUSING
    clock.now = 61
    assert pumps["bed02"].state is DeliveryState.STOPPED and pumps["bed02"].volume_infused_ml == Decimal("50")
    assert pumps["bed03"].alarms == ()
    clock.now = 91
    assert [a.kind for a in pumps["bed03"].alarms] == ["motor_stalled"]
    assert pumps["bed03"].state is DeliveryState.STOPPED
    assert pumps["bed01"].state is DeliveryState.INFUSING


async def test_fleet_serves_each_bed_on_its_own_pty_and_closes_them_all():
    clock = FakeClock()
    pumps = demo_pumps(clock=clock)
    clock.now = 100  # bed02 complete, bed03 stalled
    async with PtyFleet(pumps) as fleet:
        paths = dict(fleet.paths)
        assert len(set(paths.values())) == 3
        states = {}
        for pump_id, path in paths.items():
            link = await open_serial(path, name=pump_id, baudrate=19200)
            try:
                driver = Ne1000Driver(link, pump_id=pump_id)
                snapshot = await driver.poll()
                states[pump_id] = (snapshot.channels[0].state, {a.kind for a in snapshot.channels[0].alarms})
            finally:
                await link.close()
    assert states == {
        "bed01": (ChannelState.INFUSING, {"pump_reset"}),
        "bed02": (ChannelState.STOPPED, {"pump_reset"}),
        "bed03": (ChannelState.ALARM, {"pump_reset", "motor_stalled"}),
    }
    assert fleet.paths == {}
