"""The Alaris-style driver against its simulator over real pseudo-terminals."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest

from drivers.alaris.client import QUERIES, AlarisDriver
from drivers.alaris.codec import EchoMismatch
from drivers.alaris.framing import ChecksumError, encode_frame
from drivers.errors import ForbiddenCommand, LinkClosed, ReplyTimeout
from drivers.model import ChannelState, Quantity
from drivers.transport import Link, open_serial
from simulators.alaris import AlarisLine
from simulators.alaris.frontend import security_code
from simulators.pty_server import PtyServer
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_pump(clock: FakeClock, serial: str = "8002-51740", *, vtbi: str | None = "250") -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("BD", "Asena GH", serial, "Asena Rev 2.1.5"),
        program=Program(Decimal("15.4"), None if vtbi is None else Decimal(vtbi)),
        running=True,
        clock=clock,
    )


@dataclass
class Bench:
    server: PtyServer
    line: AlarisLine
    link: Link
    driver: AlarisDriver
    pump: SimulatedPump
    clock: FakeClock


@contextlib.asynccontextmanager
async def bench(timeout_s: float = 1.0, **line_args: object) -> AsyncIterator[Bench]:
    clock = FakeClock()
    pump = make_pump(clock)
    line = AlarisLine(pump, clock=clock, **line_args)
    async with PtyServer(line, name="alaris-bed01") as server:
        link = await open_serial(server.path, name="bed01", baudrate=AlarisDriver.BAUDRATE)
        try:
            yield Bench(
                server, line, link, AlarisDriver(link, pump_id="bed01", request_timeout_s=timeout_s), pump, clock
            )
        finally:
            await link.close()


async def test_identify_reads_serial_number_and_protocol_revision():
    async with bench() as b:
        identity = await b.driver.identify()
    assert (identity.serial_number, identity.firmware) == ("8002-51740", "Asena Rev 2.1.5")


async def test_poll_values_follow_the_model_over_time():
    async with bench() as b:
        first = await b.driver.poll()
        b.clock.now += 1800
        second = await b.driver.poll()
    channel = first.channels[0]
    assert channel.state is ChannelState.INFUSING
    assert channel.rate == Quantity(Decimal("15.40"), "mL/h")
    assert channel.vtbi == Quantity(Decimal("250.000"), "mL")
    assert second.channels[0].volume_infused == Quantity(Decimal("7.700"), "mL")
    assert channel.alarms == ()


async def test_alarms_and_states_from_the_model_reach_the_snapshot():
    async with bench() as b:
        b.pump.set_alarm("occlusion")
        alarmed = await b.driver.poll()
        b.pump.clear_alarm("occlusion")
        b.pump.set_alarm("near_end")
        b.pump.start()
        near_end = await b.driver.poll()
        b.pump.pause()
        paused = await b.driver.poll()
    assert [(a.code, a.kind) for a in alarmed.channels[0].alarms] == [("AL_OCCLUSION", "occlusion")]
    assert alarmed.channels[0].state is ChannelState.ALARM
    assert [a.kind for a in near_end.channels[0].alarms] == ["near_end"]
    assert near_end.channels[0].state is ChannelState.INFUSING
    assert paused.channels[0].state is ChannelState.PAUSED


async def test_completion_falls_back_to_kvo_with_end_of_infusion_alarm():
    async with bench() as b:
        b.clock.now += 3600 * 20  # 250 mL at 15.4 mL/h take ~16 h
        snapshot = await b.driver.poll()
    channel = snapshot.channels[0]
    assert channel.state is ChannelState.KVO
    assert [a.kind for a in channel.alarms] == ["end_of_infusion"]


async def test_pump_that_needs_remote_control_for_queries_times_out_and_driver_never_enables_it():
    async with bench(timeout_s=0.2, queries_need_remote=True) as b:
        with pytest.raises(ReplyTimeout) as caught:
            await b.driver.identify()
        assert not b.line.remote_ctrl
    assert caught.value.command == "INST_SERIALNO"
    assert all(not r.startswith("REMOTE") for r in b.line.received)


async def test_bad_crc_reply_raises_checksum_error_then_recovers():
    async with bench() as b:
        await b.driver.identify()
        b.line.faults.corrupt_checksum = True
        with pytest.raises(ChecksumError) as caught:
            await b.driver.poll()
        b.line.faults.corrupt_checksum = False
        snapshot = await b.driver.poll()
    assert caught.value.pump_id == "bed01"
    assert snapshot.channels[0].rate == Quantity(Decimal("15.40"), "mL/h")


async def test_garbage_before_replies_is_skipped_and_counted():
    async with bench() as b:
        b.line.faults.garbage_before_reply = b"\xff\rnoise\x1b"
        snapshot = await b.driver.poll()
    assert snapshot.channels[0].vtbi == Quantity(Decimal("250.000"), "mL")
    assert b.driver.dropped_bytes >= 8 * 5


async def test_silence_is_reply_timeout_and_slow_reply_is_drained_not_misread():
    async with bench(timeout_s=0.15) as b:
        b.line.faults.silent = True
        with pytest.raises(ReplyTimeout):
            await b.driver.identify()
        b.line.faults.silent = False
        b.line.faults.reply_delay_s = 0.3
        with pytest.raises(ReplyTimeout):
            await b.driver.rate()
        b.line.faults.reply_delay_s = 0.0
        assert await b.driver.volume_infused() == Quantity(Decimal("0.000"), "mL")
    assert b.driver.dropped_bytes > 0


async def test_disconnect_is_link_closed_and_reconnect_serves_the_same_symlink(tmp_path):
    clock = FakeClock()
    line = AlarisLine(make_pump(clock))
    async with PtyServer(line, link_path=str(tmp_path / "bed01")) as server:
        link = await open_serial(server.path, name="bed01")
        driver = AlarisDriver(link, pump_id="bed01")
        await driver.identify()
        server.disconnect()
        with pytest.raises(LinkClosed):
            await driver.poll()
        await link.close()
        server.reconnect()
        link = await open_serial(server.path, name="bed01")
        try:
            snapshot = await AlarisDriver(link, pump_id="bed01").poll()
        finally:
            await link.close()
    assert snapshot.identity.serial_number == "8002-51740"


async def test_identity_swap_and_firmware_change_show_in_the_next_snapshot():
    async with bench() as b:
        before = await b.driver.poll()
        b.line.pump = make_pump(b.clock, serial="8002-51733")
        swapped = await b.driver.poll()
        b.line.pump.identity = replace(b.line.pump.identity, firmware="Asena Rev 2.2.0")
        await b.driver.identify()
        upgraded = await b.driver.poll()
    assert before.identity.serial_number == "8002-51740"
    assert swapped.identity.serial_number == "8002-51733"
    assert upgraded.identity.firmware == "Asena Rev 2.2.0"


async def test_reply_echoing_the_wrong_command_is_an_echo_mismatch():
    async with bench() as b:
        b.line.faults.silent = True
        task = asyncio.create_task(b.driver.rate())
        await asyncio.sleep(0.05)
        await b.server._endpoint.write(encode_frame(b"INF_VI^1.000^ml"))  # a reply to another question
        with pytest.raises(EchoMismatch):
            await task


async def test_simulator_accepts_state_changes_only_after_remote_control_with_the_right_code():
    async with bench() as b:
        link, server = b.link, b.server
        await link.write(encode_frame(b"INF_STOP"))
        await asyncio.sleep(0.1)
        assert b.pump.state.value == "infusing"
        await link.write(encode_frame(f"REMOTE_CTRL^ENABLED^{security_code('8002-51740')}".encode()))
        await link.write(encode_frame(b"INF_STOP"))
        await link.write(encode_frame(b"INF_RATE^20.5^ml/h"))
        await asyncio.sleep(0.1)
        assert server.line.remote_ctrl
        assert b.pump.state.value == "paused" and b.pump.program.rate_ml_h == Decimal("20.5")
        assert security_code("8002-51740") == "3CC1"


async def test_infusion_started_over_serial_alarms_after_15_s_without_traffic():
    async with bench() as b:
        b.pump.pause()
        b.line.remote_ctrl = True
        b.line.receive(encode_frame(b"INF_START"))
        b.clock.now += 16
        b.line.tick()
    assert [a.kind for a in b.pump.alarms] == ["comm_timeout"]


# -- the read-only allowlist (design §2 invariant 1) ------------------------------------


def _public_coroutines() -> list[str]:
    return [n for n, m in inspect.getmembers(AlarisDriver, inspect.iscoroutinefunction) if not n.startswith("_")]


async def test_every_command_the_driver_emits_is_an_allowlisted_bare_query():
    assert AlarisDriver.ALLOWED_COMMANDS == frozenset(QUERIES.values())
    assert not any(c.startswith("REMOTE") or "^" in c for c in AlarisDriver.ALLOWED_COMMANDS)
    async with bench() as b:
        b.pump.set_alarm("occlusion")
        for name in _public_coroutines():
            await getattr(b.driver, name)()
        await asyncio.sleep(0.05)
    sent = set(b.line.received)
    assert sent == AlarisDriver.ALLOWED_COMMANDS  # every query exercised, nothing else sent


@pytest.mark.parametrize(
    "command",
    [
        "INF_START",
        "INF_STOP",
        "INF_RATE^12.00^ml/h",
        "REMOTE_CTRL^ENABLED^3CC1",
        "REMOTE_CFG^ENABLED^3CC1",
        "REMOTE_CTRL^DISABLED",
        "INF_VTBI^DEACT",
        "INF_VI_CLEAR",
        "INF^x",
        "INF\r!INF_START",
        "REMQUERY^DEACT",
    ],
)
async def test_send_refuses_anything_off_the_allowlist_and_writes_nothing(command):
    async with bench() as b:
        with pytest.raises(ForbiddenCommand):
            await b.driver._send(command)
        await asyncio.sleep(0.05)
    assert b.line.received == []
