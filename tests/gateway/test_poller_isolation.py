"""One pump whose snapshots cannot be processed must not take its rack neighbours down."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from drivers.transport import open_tcp
from gateway.config.model import PumpConfig
from gateway.poller import LinkPoller
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


class OneBadPump:
    """A sink whose processing fails for ``bad`` (as an unforeseen bug in the pipeline would)."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.snapshots: dict[str, int] = {}

    async def on_snapshot(self, pump_id, snapshot) -> None:
        self.snapshots[pump_id] = self.snapshots.get(pump_id, 0) + 1
        if pump_id == self.bad:
            raise ArithmeticError("[<class 'decimal.InvalidOperation'>]")

    async def on_identity(self, pump_id, identity) -> None:
        if pump_id == self.bad:
            raise RuntimeError("identity processing failed")

    async def on_identity_unreadable(self, pump_id, reason) -> None:
        pass

    async def on_comm_lost(self, pump_id, at, reason) -> None:
        pass

    async def on_comm_restored(self, pump_id, at) -> None:
        pass


def rack_pump(rate: str) -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("B. Braun", "688F030006", "1", "688N030003"),
        program=Program(Decimal(rate), Decimal("50")),
        running=True,
    )


async def test_a_pump_whose_processing_raises_is_skipped_alerted_once_and_neighbours_carry_on(no_leaked_fds_or_threads):
    rack = BccRack()
    for slot in (1, 2, 3):
        rack.insert(1, slot, rack_pump("5.0"))
    alerts: list[tuple[str, dict]] = []
    async with BccRackServer(rack) as server:
        pumps = [
            PumpConfig(
                id=f"slot{slot}",
                protocol="bbraun-bcc",
                poll_interval_s=0.2,
                request_timeout_s=1.0,
                link={"type": "tcp", "host": "127.0.0.1", "port": server.port, "pillar": 1, "slot": slot},
            )
            for slot in (1, 2, 3)
        ]
        sink = OneBadPump("slot2")

        async def opener(pump, name):
            return await open_tcp("127.0.0.1", server.port, name=name)

        poller = LinkPoller("tcp:rack", pumps, sink, opener=opener, alert=lambda n, d: alerts.append((n, dict(d))))
        task = asyncio.create_task(poller.run())
        try:
            async with asyncio.timeout(20):
                while min(sink.snapshots.get(p, 0) for p in ("slot1", "slot2", "slot3")) < 4:
                    await asyncio.sleep(0.02)
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert poller.reconnects == 0  # the link was never torn down for it
    assert [(n, d["pump"], d["stage"]) for n, d in alerts] == [("pump_processing_failed", "slot2", "identity")]
