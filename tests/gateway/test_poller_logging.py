"""Logs an operator can live with: a link that keeps failing logs its first failure at
WARNING and its recovery at INFO (with the count), not one WARNING per attempt; errors are
fields without the pump/link repeated and without Python reprs."""

from __future__ import annotations

import asyncio
import io
import json

from drivers.errors import LinkError
from gateway.config.model import PumpConfig
from gateway.log import configure_logging
from gateway.poller import LinkPoller
from gateway.poller.link_poller import open_link
from simulators.fleet import demo_pumps
from simulators.ne1000.pty import Ne1000PtySimulator


class Sink:
    def __init__(self) -> None:
        self.snapshots = 0
        self.got = asyncio.Event()

    async def on_snapshot(self, pump_id, snapshot) -> None:
        self.snapshots += 1
        self.got.set()

    async def on_identity(self, pump_id, identity) -> None:
        pass

    async def on_comm_lost(self, pump_id, at, reason) -> None:
        pass

    async def on_comm_restored(self, pump_id, at) -> None:
        pass


async def test_a_link_failing_repeatedly_logs_first_failure_and_recovery_only():
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    simulator = Ne1000PtySimulator(demo_pumps()["bed01"], name="bed01")
    path = await simulator.start()
    pump = PumpConfig(
        id="bed01",
        protocol="ne1000",
        poll_interval_s=0.2,
        request_timeout_s=0.5,
        link={"type": "serial", "url": path, "baudrate": 19200},
    )
    attempts = 0

    async def flaky_opener(config, name):  # the device server refuses 6 connections, then accepts
        nonlocal attempts
        attempts += 1
        if attempts <= 6:
            raise LinkError(name, f"cannot open {path}: Connection refused")
        return await open_link(config, name)

    sink = Sink()
    poller = LinkPoller(
        "serial:" + path, [pump], sink, opener=flaky_opener, backoff_initial_s=0.001, backoff_max_s=0.01
    )
    task = asyncio.create_task(poller.run())
    try:
        async with asyncio.timeout(20):
            await sink.got.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await simulator.stop()
        configure_logging(level="warning", fmt="json")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    down = [line for line in lines if line["event"] == "link down; reconnecting"]
    assert len(down) == 1 and down[0]["level"] == "warning"
    assert down[0]["error"] == f"cannot open {path}: Connection refused"  # no "link serial:..." prefix repeated
    again = [line for line in lines if line["event"] == "link open again"]
    assert len(again) == 1 and again[0]["level"] == "info" and again[0]["failed_attempts"] == 6
    assert attempts == 7
    text = stream.getvalue()
    assert "b'" not in text and "None" not in text


async def test_a_noisy_line_warns_once_per_spell_and_counts_every_byte(caplog):
    """Garbage before every reply (a noisy RS-232 line): polling goes on, one WARNING for the
    spell instead of one per poll, every skipped byte still counted."""
    import logging

    from simulators.faults import Faults

    faults = Faults(garbage_before_reply=b"\x00\x7f~~")
    simulator = Ne1000PtySimulator(demo_pumps()["bed01"], faults=faults, name="bed01")
    path = await simulator.start()
    pump = PumpConfig(
        id="bed01",
        protocol="ne1000",
        poll_interval_s=0.2,
        request_timeout_s=0.5,
        link={"type": "serial", "url": path, "baudrate": 19200},
    )
    sink = Sink()
    poller = LinkPoller("serial:" + path, [pump], sink)
    caplog.set_level(logging.DEBUG, logger="pumpgw.drivers")
    task = asyncio.create_task(poller.run())
    try:
        async with asyncio.timeout(30):
            while sink.snapshots < 6:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await simulator.stop()
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    warnings = [r for r in skipped if r.levelno == logging.WARNING]
    assert len(skipped) >= 6  # every run is still logged, at DEBUG
    assert len(warnings) == 1 and "repeats are summarised" in warnings[0].getMessage()
