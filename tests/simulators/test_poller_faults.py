"""Every injected fault reaches the poller as the right outcome, and the poller recovers.

Real parts throughout: the gateway's LinkPoller with its real link opener, the simulators
on real ptys (behind their reconnectable symlink) and real loopback TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import pytest

from drivers.bbraun_bcc import session as bcc_session
from drivers.model import PumpIdentity, PumpSnapshot
from gateway.config.model import PumpConfig
from gateway.poller import link_poller
from gateway.poller.link_poller import LinkPoller, group_by_link
from simulators.alaris import AlarisLine
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.pty_server import PtyServer
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


class Sink:
    """Records what the poller hands over; tests wait on it."""

    def __init__(self) -> None:
        self.snapshots: dict[str, list[PumpSnapshot]] = {}
        self.identities: dict[str, list[PumpIdentity]] = {}
        self.events: list[tuple[str, str]] = []
        self.unreadable: list[str] = []
        self.changed = asyncio.Event()

    async def on_snapshot(self, pump_id: str, snapshot: PumpSnapshot) -> None:
        self.snapshots.setdefault(pump_id, []).append(snapshot)
        self.changed.set()

    async def on_identity(self, pump_id: str, identity: PumpIdentity) -> None:
        self.identities.setdefault(pump_id, []).append(identity)
        self.changed.set()

    async def on_identity_unreadable(self, pump_id: str, reason: str) -> None:
        self.unreadable.append(pump_id)
        self.changed.set()

    async def on_comm_lost(self, pump_id: str, at: datetime, reason: str) -> None:
        self.events.append((pump_id, "lost"))
        self.changed.set()

    async def on_comm_restored(self, pump_id: str, at: datetime) -> None:
        self.events.append((pump_id, "restored"))
        self.changed.set()

    async def until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def count(self, pump_id: str) -> int:
        return len(self.snapshots.get(pump_id, []))


def pump_config(pump_id: str, protocol: str, link: dict, **fast: float) -> PumpConfig:
    config = PumpConfig.model_validate(
        {
            "id": pump_id,
            "protocol": protocol,
            "link": link,
            "poll_interval_s": 0.2,
            "request_timeout_s": 0.2,
            "comm_lost_after_s": 0.5,
        }
    )
    # The schema's floor (0.2 s) protects real pumps; the poller's mechanics are tested faster.
    return config.model_copy(update=fast) if fast else config


@contextlib.asynccontextmanager
async def running(pumps: list[PumpConfig], sink: Sink, **backoff: float) -> AsyncIterator[LinkPoller]:
    ((key, group),) = group_by_link(pumps).items()
    poller = LinkPoller(
        key, group, sink, backoff_initial_s=backoff.get("initial", 0.01), backoff_max_s=backoff.get("max", 0.05)
    )
    task = asyncio.create_task(poller.run(), name=f"poller {key}")
    try:
        yield poller
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def alaris_pump(serial: str = "8002-51740") -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("BD", "Asena GH", serial, "Asena Rev 2.1.5"),
        program=Program(Decimal("15.4"), Decimal("250")),
        running=True,
    )


@contextlib.asynccontextmanager
async def alaris_setup(tmp_path) -> AsyncIterator[tuple[PtyServer, AlarisLine, Sink, LinkPoller]]:
    line = AlarisLine(alaris_pump())
    async with PtyServer(line, link_path=str(tmp_path / "alaris-bed01")) as server:
        sink = Sink()
        config = pump_config("bed01", "alaris", {"type": "serial", "url": server.path, "baudrate": 38400})
        async with running([config], sink) as poller:
            await sink.until(lambda: sink.count("bed01") >= 1)
            yield server, line, sink, poller


@pytest.mark.parametrize(
    "fault",
    [
        {"silent": True},
        {"corrupt_checksum": True},
        {"reply_delay_s": 0.5},
    ],
)
async def test_alaris_reply_fault_makes_the_pump_lost_and_clearing_it_restores(tmp_path, fault):
    async with alaris_setup(tmp_path) as (server, line, sink, poller):
        for name, value in fault.items():
            setattr(line.faults, name, value)
        await sink.until(lambda: ("bed01", "lost") in sink.events)
        line.faults.clear()
        await sink.until(lambda: ("bed01", "restored") in sink.events)
        before = sink.count("bed01")
        await sink.until(lambda: sink.count("bed01") > before)
    assert sink.events.index(("bed01", "lost")) < sink.events.index(("bed01", "restored"))


async def test_alaris_garbage_does_not_stop_polling(tmp_path):
    async with alaris_setup(tmp_path) as (server, line, sink, poller):
        line.faults.garbage_before_reply = b"\x00\xffnoise\r"
        before = sink.count("bed01")
        await sink.until(lambda: sink.count("bed01") >= before + 3)
    assert sink.events == []


async def test_alaris_unplugged_and_replugged_pty_is_reconnected(tmp_path):
    async with alaris_setup(tmp_path) as (server, line, sink, poller):
        server.disconnect()
        await sink.until(lambda: ("bed01", "lost") in sink.events)
        server.reconnect()
        await sink.until(lambda: ("bed01", "restored") in sink.events)
    assert poller.reconnects >= 1


async def test_alaris_identity_swap_and_firmware_change_reach_the_sink(tmp_path, monkeypatch):
    monkeypatch.setattr(link_poller, "IDENTITY_RECHECK_S", 0.3)
    async with alaris_setup(tmp_path) as (server, line, sink, poller):
        line.pump = alaris_pump("8002-51733")
        await sink.until(lambda: sink.snapshots["bed01"][-1].identity.serial_number == "8002-51733")
        line.pump.identity = replace(line.pump.identity, firmware="Asena Rev 3.0.0")
        await sink.until(lambda: sink.identities["bed01"][-1].firmware == "Asena Rev 3.0.0")
    assert sink.identities["bed01"][-1].serial_number == "8002-51733"


async def test_an_unreadable_alaris_identity_is_reported_and_polling_goes_on(tmp_path, monkeypatch):
    """Empty INST_SERIALNO/COMMS_PROTOCOL replies: one `identity unreadable` per identify,
    snapshots keep coming, nothing is reported lost; readable again, identities resume."""
    monkeypatch.setattr(link_poller, "IDENTITY_RECHECK_S", 0.3)
    async with alaris_setup(tmp_path) as (server, line, sink, poller):
        line.pump.identity = replace(line.pump.identity, readable=False)
        await sink.until(lambda: sink.unreadable.count("bed01") >= 2)
        polled = sink.count("bed01")
        await sink.until(lambda: sink.count("bed01") >= polled + 3)
        line.pump.identity = replace(line.pump.identity, readable=True)
        seen = len(sink.identities["bed01"])
        await sink.until(lambda: len(sink.identities["bed01"]) > seen)
    assert not [e for e in sink.events if e[1] == "lost"]


def rack_pump(rate: str) -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("B. Braun", "688F030006", "40864", "688N030003"),
        program=Program(Decimal(rate), Decimal("50")),
        running=True,
    )


@contextlib.asynccontextmanager
async def rack_setup(monkeypatch, **fast: float) -> AsyncIterator[tuple[BccRack, BccRackServer, Sink, LinkPoller]]:
    monkeypatch.setattr(bcc_session, "MIN_REQUEST_GAP_S", 0.0)
    rack = BccRack()
    rack.insert(1, 1, rack_pump("20"))
    rack.insert(1, 2, rack_pump("10"))
    async with BccRackServer(rack) as server:
        sink = Sink()
        configs = [
            pump_config(
                f"p1s{slot}",
                "bbraun-bcc",
                {"type": "tcp", "host": "127.0.0.1", "port": server.port, "pillar": 1, "slot": slot},
                **fast,
            )
            for slot in (1, 2)
        ]
        async with running(configs, sink, initial=0.001, max=0.002) as poller:
            await sink.until(lambda: sink.count("p1s1") >= 1 and sink.count("p1s2") >= 1)
            yield rack, server, sink, poller


async def test_rack_polls_every_slot_with_one_request_per_cycle(monkeypatch):
    async with rack_setup(monkeypatch) as (rack, server, sink, poller):
        await sink.until(lambda: sink.count("p1s1") >= 4)
    gets = rack.requests.count("MEM:GET")
    assert gets <= sink.count("p1s1") + 1  # not one per slot
    assert sink.snapshots["p1s2"][-1].channels[0].rate.value == Decimal("10.00")


@pytest.mark.parametrize("fault", [{"silent": True}, {"corrupt_checksum": True}])
async def test_rack_slot_fault_marks_only_that_pump_lost(monkeypatch, fault):
    async with rack_setup(monkeypatch) as (rack, server, sink, poller):
        for name, value in fault.items():
            setattr(rack.slots[(1, 2)].faults, name, value)
        await sink.until(lambda: ("p1s2", "lost") in sink.events)
        before = sink.count("p1s1")
        await sink.until(lambda: sink.count("p1s1") >= before + 2)
        rack.slots[(1, 2)].faults.clear()
        await sink.until(lambda: ("p1s2", "restored") in sink.events)
    assert ("p1s1", "lost") not in sink.events


async def test_removed_pump_is_lost_and_an_inserted_one_restores_with_its_identity(monkeypatch):
    async with rack_setup(monkeypatch) as (rack, server, sink, poller):
        rack.remove(1, 2)
        await sink.until(lambda: ("p1s2", "lost") in sink.events)
        new = rack_pump("3")
        new.identity = replace(new.identity, model="688F099999")
        rack.insert(1, 2, new)
        await sink.until(lambda: ("p1s2", "restored") in sink.events)
    assert sink.snapshots["p1s2"][-1].identity.model == "688F099999"


async def test_a_thousand_rack_disconnects_leak_no_task_and_no_descriptor(monkeypatch):
    tasks_before = len(asyncio.all_tasks())
    fds_before = len(os.listdir("/proc/self/fd"))
    async with rack_setup(monkeypatch, poll_interval_s=0.001) as (rack, server, sink, poller):
        for cycle in range(1000):
            accepted = server.connections_accepted
            await sink.until(lambda: server.connections_accepted > accepted or cycle == 0)
            polled = sink.count("p1s1")
            await sink.until(lambda: sink.count("p1s1") > polled)
            server.drop_connections()
        polled = sink.count("p1s1")
        await sink.until(lambda: sink.count("p1s1") > polled)  # and it came back once more
        during_fds = len(os.listdir("/proc/self/fd"))
    assert poller.reconnects >= 1000
    assert server.connections_accepted >= 1001
    assert during_fds <= fds_before + 8  # the listener, one client socket and its peer
    assert len(asyncio.all_tasks()) == tasks_before
