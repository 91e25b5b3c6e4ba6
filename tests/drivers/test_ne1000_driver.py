"""The NE-1000 driver against the simulated pump over real pseudo-terminals."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import pty
import tty
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from drivers.errors import (
    ForbiddenCommand,
    FrameError,
    LinkClosed,
    LinkError,
    PumpRefused,
    ReplyTimeout,
    SafeModeActive,
)
from drivers.line import Line
from drivers.model import ChannelState, Quantity
from drivers.ne1000 import codec
from drivers.ne1000.client import QUERIES, Ne1000Driver
from drivers.ne1000.framing import RequestDecoder, encode_basic_reply
from drivers.transport import TRACE, Link, open_serial
from simulators.ne1000 import Faults, Ne1000PtySimulator
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_pump(clock: FakeClock, *, rate: str = "15.4", vtbi: str | None = "250", running: bool = True) -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("New Era Pump Systems", "NE-1000", "SIM-1", "3.928"),
        program=Program(Decimal(rate), None if vtbi is None else Decimal(vtbi)),
        running=running,
        clock=clock,
        kvo_on_complete=False,
        alarm_on_complete=False,
    )


@dataclass
class Bench:
    sim: Ne1000PtySimulator
    link: Link
    driver: Ne1000Driver
    pump: SimulatedPump
    clock: FakeClock

    @property
    def faults(self) -> Faults:
        return self.sim.faults(0)


@contextlib.asynccontextmanager
async def bench(timeout_s: float = 1.0, **pump_args: object) -> AsyncIterator[Bench]:
    clock = FakeClock()
    pump = make_pump(clock, **pump_args)
    sim = Ne1000PtySimulator(pump)
    path = await sim.start()
    link = await open_serial(path, name="bed01", baudrate=19200)
    try:
        yield Bench(sim, link, Ne1000Driver(link, pump_id="bed01", request_timeout_s=timeout_s), pump, clock)
    finally:
        await link.close()
        await sim.stop()


async def test_identify_reports_model_and_firmware_and_no_serial_number():
    async with bench() as b:
        identity = await b.driver.identify()
    assert (identity.manufacturer, identity.model, identity.firmware) == ("New Era Pump Systems", "NE-1000", "3.928")
    assert identity.serial_number is None


async def test_power_up_alarm_acknowledged_by_identify_is_carried_by_the_first_snapshot():
    async with bench() as b:
        await b.driver.identify()
        assert [a.kind for a in b.driver.unreported_alarms] == ["pump_reset"]
        first = await b.driver.poll()
        second = await b.driver.poll()
    assert [a.code for a in first.channels[0].alarms] == ["A?R"]
    assert second.channels[0].alarms == ()


async def test_poll_reports_rate_vtbi_state_and_growing_volume():
    async with bench() as b:
        first = await b.driver.poll()
        b.clock.now += 1800  # half an hour at 15.4 mL/h
        second = await b.driver.poll()
    channel = first.channels[0]
    assert (channel.channel_id, channel.state) == ("1", ChannelState.INFUSING)
    assert channel.rate == Quantity(Decimal("15.40"), "mL/h")
    assert channel.vtbi == Quantity(Decimal("250.0"), "mL")
    assert channel.volume_infused == Quantity(Decimal("0.000"), "mL")
    assert second.channels[0].volume_infused == Quantity(Decimal("7.700"), "mL")
    assert second.received_at.tzinfo is not None and second.received_at.utcoffset().total_seconds() == 0
    assert second.identity.model == "NE-1000"


async def test_status_changes_are_reported_paused_stopped_and_completed():
    async with bench(rate="60", vtbi="10") as b:
        await b.driver.poll()
        b.pump.pause()
        paused = await b.driver.poll()
        b.pump.resume()
        running = await b.driver.poll()
        b.clock.now += 3600  # 60 mL/h for an hour: the 10 mL are done after 10 minutes
        done = await b.driver.poll()
    assert paused.channels[0].state is ChannelState.PAUSED
    assert running.channels[0].state is ChannelState.INFUSING
    assert done.channels[0].state is ChannelState.STOPPED
    assert done.channels[0].volume_infused == Quantity(Decimal("10.00"), "mL")


async def test_alarm_appears_in_one_snapshot_then_is_acknowledged():
    async with bench() as b:
        await b.driver.poll()
        b.pump.set_alarm("motor_stalled")
        alarmed = await b.driver.poll()
        after = await b.driver.poll()
    channel = alarmed.channels[0]
    assert [(a.code, a.kind) for a in channel.alarms] == [("A?S", "motor_stalled")]
    assert channel.state is ChannelState.ALARM
    assert after.channels[0].alarms == ()
    assert after.channels[0].state is ChannelState.STOPPED
    assert [a.acknowledged for a in b.pump.alarms if a.kind == "motor_stalled"] == [True]


async def test_alarm_acknowledged_outside_a_poll_is_not_lost(caplog):
    async with bench() as b:
        await b.driver.poll()
        b.pump.set_alarm("motor_stalled")
        with caplog.at_level(logging.WARNING, logger="pumpgw.drivers.ne1000"):
            assert await b.driver.direction() == "INF"
        snapshot = await b.driver.poll()
    assert "A?S" in caplog.text and "bed01" in caplog.text
    assert [a.kind for a in snapshot.channels[0].alarms] == ["motor_stalled"]


async def test_link_closed_mid_poll_raises_link_closed():
    async with bench(timeout_s=5.0) as b:
        await b.driver.poll()
        b.faults.silent = True
        poll = asyncio.create_task(b.driver.poll())
        await asyncio.sleep(0.1)
        await b.sim.stop()
        with pytest.raises(LinkClosed):
            await asyncio.wait_for(poll, 3)


async def test_silent_pump_raises_reply_timeout_naming_pump_and_command():
    async with bench(timeout_s=0.2) as b:
        b.faults.silent = True
        with pytest.raises(ReplyTimeout) as caught:
            await b.driver.identify()
    assert (caught.value.pump_id, caught.value.command) == ("bed01", "VER")


async def test_garbage_before_a_reply_is_skipped_and_counted():
    async with bench() as b:
        b.faults.garbage_before_reply = b"\xff\xfeNOISE"
        snapshot = await b.driver.poll()
    assert snapshot.channels[0].rate == Quantity(Decimal("15.40"), "mL/h")
    assert b.driver.dropped_bytes >= 7


async def test_corrupted_reply_raises_frame_error_and_the_next_poll_recovers():
    async with bench() as b:
        await b.driver.poll()
        b.faults.corrupt_checksum = True
        with pytest.raises(FrameError) as caught:
            await b.driver.poll()
        b.faults.corrupt_checksum = False
        snapshot = await b.driver.poll()
    assert caught.value.pump_id == "bed01" and caught.value.link == "bed01"
    assert snapshot.channels[0].vtbi == Quantity(Decimal("250.0"), "mL")


async def test_late_reply_is_drained_and_never_taken_for_the_next_answer():
    async with bench(timeout_s=0.15) as b:
        await b.driver.poll()
        b.faults.reply_delay_s = 0.3
        with pytest.raises(ReplyTimeout):
            await b.driver.direction()
        b.faults.reply_delay_s = 0.0
        snapshot = await b.driver.poll()
    assert snapshot.channels[0].rate == Quantity(Decimal("15.40"), "mL/h")
    assert b.driver.dropped_bytes > 0


async def test_pump_in_safe_mode_is_reported_and_its_watchdog_is_not_armed():
    async with bench() as b:
        b.sim.line.pumps[0].safe_timeout_s = 5
        with pytest.raises(SafeModeActive):
            await b.driver.identify()
        assert b.sim.line.pumps[0].watchdog_armed_at is None


async def test_two_pumps_on_one_line_are_polled_concurrently_without_interleaving():
    clock = FakeClock()
    pumps = {0: make_pump(clock, rate="15.4"), 3: make_pump(clock, rate="100")}
    async with Ne1000PtySimulator(pumps) as sim:
        link = await open_serial(sim.path, name="line1")
        try:
            line = Line(link)  # one wire: one lock, one decoder for both pumps
            drivers = [Ne1000Driver(line, pump_id=f"p{a}", address=a) for a in (0, 3)]
            snapshots = await asyncio.gather(*(d.poll() for _ in range(3) for d in drivers))
        finally:
            await link.close()
    rates = {(s.pump_id, s.channels[0].rate.value) for s in snapshots}
    assert rates == {("p0", Decimal("15.40")), ("p3", Decimal("100.0"))}


@contextlib.asynccontextmanager
async def raw_pump() -> AsyncIterator[tuple[int, Ne1000Driver]]:
    """A pty whose pump side the test writes byte by byte (for replies the model never makes)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    link = await open_serial(os.ttyname(slave), name="raw")
    try:
        yield master, Ne1000Driver(link, pump_id="raw", request_timeout_s=1.0)
    finally:
        await link.close()
        os.close(master)
        os.close(slave)


async def _answer(master: int, reply: bytes) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, os.read, master, 100)
    os.write(master, reply)


async def test_typed_refusal_from_the_pump_is_pump_refused():
    async with raw_pump() as (master, driver):
        answer = asyncio.create_task(_answer(master, encode_basic_reply("00S?NA")))
        with pytest.raises(PumpRefused) as caught:
            await driver.direction()
        await answer
    assert (caught.value.code, caught.value.command) == ("?NA", "DIR")


async def test_reply_from_another_address_is_a_frame_error():
    async with raw_pump() as (master, driver):
        answer = asyncio.create_task(_answer(master, encode_basic_reply("05SINF")))
        with pytest.raises(FrameError, match="address 5, expected 0"):
            await driver.direction()
        await answer


# -- the read-only allowlist (design §2 invariant 1) ------------------------------------


def _public_coroutines() -> list[str]:
    return [
        name
        for name, member in inspect.getmembers(Ne1000Driver, inspect.iscoroutinefunction)
        if not name.startswith("_")
    ]


async def test_every_command_the_driver_emits_is_an_allowlisted_query_without_parameters(caplog):
    assert Ne1000Driver.ALLOWED_COMMANDS == frozenset(QUERIES.values())
    assert Ne1000Driver.ALLOWED_COMMANDS == {"", "VER", "RAT", "VOL", "DIS", "DIR", "DIA"}
    caplog.set_level(TRACE, logger="pumpgw.wire.bed01.tx")
    methods = _public_coroutines()
    assert set(methods) >= {"identify", "poll", "direction", "syringe_diameter"}
    async with bench() as b:
        b.pump.set_alarm("motor_stalled")  # alarm replies make the driver re-send; cover that too
        for name in methods:
            await getattr(b.driver, name)()
    sent = bytes.fromhex(" ".join(r.getMessage() for r in caplog.records if r.name == "pumpgw.wire.bed01.tx"))
    requests = RequestDecoder().feed(sent)
    assert requests and all(not r.safe for r in requests)
    commands = {r.text[1:] for r in requests}  # strip the address digit "0"
    assert all(r.text.startswith("0") for r in requests)
    assert commands <= Ne1000Driver.ALLOWED_COMMANDS
    assert commands == Ne1000Driver.ALLOWED_COMMANDS  # each query is actually exercised


@pytest.mark.parametrize(
    "command",
    ["RUN", "STP", "PUR", "SAF0", "SAF5", "SAF", "RAT15.4MH", "VOL250", "DIR WDR", "CLDINF", "VER ", "*RESET", "0VER"],
)
async def test_send_refuses_anything_off_the_allowlist_and_writes_nothing(command):
    async with raw_pump() as (master, driver):
        with pytest.raises(ForbiddenCommand):
            await driver._send(command)
        os.set_blocking(master, False)
        with pytest.raises(BlockingIOError):
            os.read(master, 100)


async def test_reply_data_of_the_wrong_shape_is_a_frame_error_naming_the_pump():
    async with raw_pump() as (master, driver):
        answer = asyncio.create_task(_answer(master, encode_basic_reply("00SSIDEWAYS")))
        with pytest.raises(FrameError, match="INF or WDR") as caught:
            await driver.direction()
        await answer
    assert caught.value.pump_id == "raw"


async def test_identity_is_read_again_after_the_pump_reports_a_power_up():
    async with bench() as b:
        await b.driver.poll()
        b.sim.line.pumps[0].version = codec.Version(1000, 4, "01")
        unchanged = await b.driver.poll()
        b.pump.set_alarm("pump_reset")  # acknowledged earlier; a new power cycle
        b.pump.clear_alarm("pump_reset")
        b.pump.set_alarm("pump_reset")
        changed = await b.driver.poll()
    assert unchanged.identity.firmware == "3.928"
    assert changed.identity.firmware == "4.01"


async def test_reply_followed_by_noise_in_the_same_read_is_used_and_the_noise_reported():
    async with raw_pump() as (master, driver):
        answer = asyncio.create_task(_answer(master, encode_basic_reply("00SINF") + b"\x02\xff junk"))
        assert await driver.direction() == "INF"
        await answer
        again = asyncio.create_task(_answer(master, encode_basic_reply("00SWDR")))
        assert await driver.direction() == "WDR"
        await again
    assert driver.dropped_bytes >= 7


async def test_concurrent_polls_of_one_driver_hand_each_alarm_over_exactly_once():
    async with bench() as b:
        await b.driver.poll()
        b.pump.set_alarm("motor_stalled")
        snapshots = await asyncio.gather(*(b.driver.poll() for _ in range(4)))
    kinds = [a.kind for s in snapshots for a in s.channels[0].alarms]
    assert kinds == ["motor_stalled"]


# -- one multidrop line, several pumps: late replies belong to the address they name ------


@contextlib.asynccontextmanager
async def raw_line(*addresses: int) -> AsyncIterator[tuple[int, list[Ne1000Driver]]]:
    """One pty shared by several drivers (one per address); the test plays every pump."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    link = await open_serial(os.ttyname(slave), name="line")
    line = Line(link)
    try:
        yield master, [Ne1000Driver(line, pump_id=f"p{a}", address=a, request_timeout_s=0.3) for a in addresses]
    finally:
        await link.close()
        os.close(master)
        os.close(slave)


async def _unanswered(master: int, driver: Ne1000Driver) -> None:
    """``driver`` asks and nobody answers in time: its reply will be late."""
    loop = asyncio.get_running_loop()
    with pytest.raises(ReplyTimeout):
        await driver.direction()
    await loop.run_in_executor(None, os.read, master, 100)  # consume the request


async def test_late_alarm_of_one_pump_arriving_as_anothers_answer_goes_to_its_own_pump():
    async with raw_line(0, 1) as (master, (a, b)):
        await _unanswered(master, b)
        answer = asyncio.create_task(_answer(master, encode_basic_reply("01A?S") + encode_basic_reply("00IINF")))
        assert await a.direction() == "INF"
        await answer
    assert a.unreported_alarms == ()
    assert [alarm.code for alarm in b.unreported_alarms] == ["A?S"]


async def test_late_alarm_drained_by_another_pump_is_noted_on_the_pump_that_sent_it():
    async with raw_line(0, 1) as (master, (a, b)):
        await _unanswered(master, a)
        await _unanswered(master, b)
        os.write(master, encode_basic_reply("01A?S"))  # B's late reply, arriving while A drains
        answer = asyncio.create_task(_answer(master, encode_basic_reply("00IINF")))
        assert await a.direction() == "INF"
        await answer
    assert a.unreported_alarms == ()
    assert [alarm.code for alarm in b.unreported_alarms] == ["A?S"]


async def test_late_alarm_from_an_address_nobody_polls_is_an_error_and_not_noted_on_a_neighbour(caplog):
    async with raw_line(0) as (master, (a,)):
        await _unanswered(master, a)
        os.write(master, encode_basic_reply("07A?S"))
        answer = asyncio.create_task(_answer(master, encode_basic_reply("00IINF")))
        with caplog.at_level(logging.ERROR, logger="pumpgw.drivers.ne1000"):
            assert await a.direction() == "INF"
        await answer
    assert a.unreported_alarms == ()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("A?S" in m and "address 7" in m for m in errors)


def _fill(fd: int) -> int:
    """Write to ``fd`` until it would block; the number of bytes it took."""
    taken = 0
    for chunk in (4096, 1):
        with contextlib.suppress(BlockingIOError):
            while True:
                taken += os.write(fd, b"x" * chunk)
    return taken


async def test_a_write_that_stalls_is_a_link_error_within_the_request_timeout():
    """Nobody drains the line (stalled adapter, flow control): fail this link, don't hang."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    link = await open_serial(os.ttyname(slave), name="stalled")
    try:
        os.set_blocking(slave, False)
        while _fill(slave):  # the kernel moves bytes on to the master side: fill until it stops
            await asyncio.sleep(0.05)
        driver = Ne1000Driver(link, pump_id="bed05", request_timeout_s=0.2)
        with pytest.raises(LinkError, match="stalled"):
            await asyncio.wait_for(driver.direction(), 5)
    finally:
        await link.close()
        os.close(master)
        os.close(slave)
