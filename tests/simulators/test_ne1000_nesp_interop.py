"""nesp-lib, an independent NE-1000 client, talks to our simulator over a real pty (§2.12)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import nesp_lib
import pytest

from simulators.ne1000 import Ne1000PtySimulator
from simulators.pump_model import DeliveryState, DeviceIdentity, Program, SimulatedPump


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _pump(clock: FakeClock) -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("New Era Pump Systems", "NE-1000", "S", "3.928"),
        program=Program(Decimal("15.4"), Decimal("250")),
        running=True,
        clock=clock,
        kvo_on_complete=False,
        alarm_on_complete=False,
    )


async def test_nesp_lib_reads_firmware_rate_volume_and_status_from_the_simulator():
    clock = FakeClock()
    pump = _pump(clock)

    def client(path: str) -> dict[str, object]:
        with nesp_lib.Port(path, 19200) as port:
            nesp = nesp_lib.Pump(port)  # sends a safe-mode SAF0 first and gets A?R, then VER
            clock.now += 3600
            return {
                "model": nesp.model_number,
                "firmware": nesp.firmware_version,
                "status": nesp.status,
                "rate": nesp.pumping_rate_ml_per_min,
                "volume": nesp.pumping_volume_ml,
                "infused": nesp.volume_infused_ml,
                "direction": nesp.pumping_direction,
            }

    async with Ne1000PtySimulator(pump) as sim:
        seen = await asyncio.wait_for(asyncio.to_thread(client, sim.path), 20)
    assert seen["model"] == 1000 and seen["firmware"] == (3, 928)
    assert seen["status"] is nesp_lib.Status.INFUSING
    assert seen["rate"] == pytest.approx(15.4 / 60)
    assert seen["volume"] == 250.0 and seen["infused"] == 15.4
    assert seen["direction"] is nesp_lib.PumpingDirection.INFUSE


async def test_nesp_lib_set_commands_drive_the_model_including_a_safe_mode_round_trip():
    clock = FakeClock()
    pump = _pump(clock)

    def client(path: str) -> list[object]:
        with nesp_lib.Port(path, 19200) as port:
            nesp = nesp_lib.Pump(port)
            nesp.stop(wait_while_running=False)  # pauses
            nesp.stop(wait_while_running=False)  # stops
            stopped = nesp.status
            nesp.pumping_rate_ml_per_min = 0.5  # 500 UM: units change only while stopped
            nesp.pumping_volume_ml = 2.0  # VOL UL then VOL 2000
            nesp.run(wait_while_running=False)
            running = nesp.status
            nesp.safe_mode_timeout_s = 5
            safe_rate = nesp.pumping_rate_ml_per_min  # safe-mode framing both ways
            nesp.safe_mode_timeout_s = 0
            return [stopped, running, safe_rate, nesp.safe_mode_timeout_s]

    async with Ne1000PtySimulator(pump) as sim:
        stopped, running, safe_rate, timeout = await asyncio.wait_for(asyncio.to_thread(client, sim.path), 20)
        assert sim.line.frame_errors == []
    assert stopped is nesp_lib.Status.STOPPED and running is nesp_lib.Status.INFUSING
    assert safe_rate == pytest.approx(0.5) and timeout == 0
    assert pump.state is DeliveryState.INFUSING
    assert pump.program.rate_ml_h == Decimal("30.000") and pump.program.vtbi_ml == Decimal("2.000")
