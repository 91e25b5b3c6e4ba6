"""The BCC-style driver against the simulated rack over real loopback TCP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest

from drivers.bbraun_bcc import codec
from drivers.bbraun_bcc.client import BccDriver, rack_address
from drivers.bbraun_bcc.framing import ChecksumError, Frame, FrameDecoder, encode_frame
from drivers.bbraun_bcc.session import ALLOWED_REQUESTS
from drivers.errors import ForbiddenCommand, LinkClosed, ReplyTimeout
from drivers.line import Line
from drivers.model import ChannelState, Quantity
from drivers.transport import TRACE, Link, open_tcp
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_pump(clock: FakeClock, rate: str, serial: str = "36248") -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("B. Braun", "688F030006", serial, "688N030003"),
        program=Program(Decimal(rate), Decimal("50"), drug="Arterenol4mg/50"),
        running=True,
        clock=clock,
    )


@dataclass
class Bench:
    rack: BccRack
    server: BccRackServer
    link: Link
    drivers: dict[tuple[int, int], BccDriver]
    clock: FakeClock


@contextlib.asynccontextmanager
async def bench(
    rates: dict[tuple[int, int], str], timeout_s: float = 1.0, stuffing: bool = False
) -> AsyncIterator[Bench]:
    clock = FakeClock()
    rack = BccRack(stuffing=stuffing)
    for (pillar, slot), rate in rates.items():
        rack.insert(pillar, slot, make_pump(clock, rate))
    async with BccRackServer(rack) as server:
        link = await open_tcp("127.0.0.1", server.port, name="rack1")
        line = Line(link)  # one connection, one session, every slot
        try:
            drivers = {
                pos: BccDriver(
                    line, pump_id=f"p{pos[0]}s{pos[1]}", address=rack_address(*pos), request_timeout_s=timeout_s
                )
                for pos in rates
            }
            for driver in drivers.values():
                driver.session.min_gap_s = 0.0
                driver.session.stuffing = stuffing
                driver.session._decoder = FrameDecoder(stuffing=stuffing)
            yield Bench(rack, server, link, drivers, clock)
        finally:
            await link.close()


async def test_identify_takes_model_and_software_from_the_slot_and_version_from_the_rack():
    async with bench({(1, 1): "20"}) as b:
        identity = await b.drivers[(1, 1)].identify()
    assert (identity.manufacturer, identity.model, identity.firmware) == ("B. Braun", "688F030006", "688N030003")
    assert identity.serial_number is None
    assert b.drivers[(1, 1)].session.bed_id == "ComSystem" and b.drivers[(1, 1)].session.version == "V3.30"


async def test_one_mem_get_serves_every_slot_and_rates_follow_the_model():
    positions = {(1, 1): "20", (1, 3): "0.3", (2, 10): "5.5"}
    async with bench(positions) as b:
        first = {pos: await d.poll() for pos, d in b.drivers.items()}
        gets = b.rack.requests.count("MEM:GET")
        b.rack.slots[(1, 3)].pump.titrate(rate_ml_h=Decimal("0.1"))
        second = {pos: await d.poll() for pos, d in b.drivers.items()}
    assert gets == 1 and b.rack.requests.count("MEM:GET") == 2
    assert {pos: s.channels[0].rate for pos, s in first.items()} == {
        (1, 1): Quantity(Decimal("20.00"), "mL/h"),
        (1, 3): Quantity(Decimal("0.30"), "mL/h"),
        (2, 10): Quantity(Decimal("5.50"), "mL/h"),
    }
    assert second[(1, 3)].channels[0].rate == Quantity(Decimal("0.10"), "mL/h")
    assert all(s.channels[0].state is ChannelState.UNKNOWN for s in first.values())  # not interpreted (§6.5)
    assert b.rack.acks_received >= 4  # every frame of each response acknowledged


async def test_removed_pump_is_gnerr_39_once_then_absent_and_a_new_pump_reappears():
    async with bench({(1, 1): "20", (1, 2): "10"}) as b:
        await b.drivers[(1, 2)].poll()
        b.rack.remove(1, 2)
        with pytest.raises(codec.PumpNotInSlot) as removed:
            await b.drivers[(1, 2)].poll()
        with pytest.raises(codec.PumpNotInSlot) as absent:
            await b.drivers[(1, 2)].poll()
        neighbour = await b.drivers[(1, 1)].poll()
        b.rack.insert(1, 2, replace_model(make_pump(b.clock, "7"), "688F040001"))
        back = await b.drivers[(1, 2)].poll()
    assert removed.value.code == "39" and absent.value.code is None
    assert neighbour.channels[0].rate == Quantity(Decimal("20.00"), "mL/h")
    assert back.identity.model == "688F040001"


def replace_model(pump: SimulatedPump, model: str) -> SimulatedPump:
    pump.identity = replace(pump.identity, model=model)
    return pump


async def test_silent_slot_is_silence_for_that_pump_only():
    async with bench({(1, 1): "20", (1, 2): "10"}) as b:
        b.rack.slots[(1, 2)].faults.silent = True
        with pytest.raises(codec.PumpNotInSlot):
            await b.drivers[(1, 2)].poll()
        assert (await b.drivers[(1, 1)].poll()).channels[0].rate.value == Decimal("20.00")


async def test_corrupted_slot_frame_raises_checksum_error_for_the_slots_it_carried():
    async with bench({(1, 1): "20", (1, 2): "10"}) as b:
        b.rack.slots[(1, 1)].faults.corrupt_checksum = True
        with pytest.raises(ChecksumError) as caught:
            await b.drivers[(1, 1)].poll()
        ok = await b.drivers[(1, 2)].poll()
        b.rack.slots[(1, 1)].faults.corrupt_checksum = False
        recovered = await b.drivers[(1, 1)].poll()
    assert caught.value.pump_id == "p1s1"
    assert ok.channels[0].rate.value == Decimal("10.00")
    assert recovered.channels[0].rate.value == Decimal("20.00")


async def test_garbage_is_skipped_and_slow_rack_times_out_then_recovers():
    async with bench({(1, 1): "20"}, timeout_s=0.2) as b:
        driver = b.drivers[(1, 1)]
        b.rack.slots[(1, 1)].faults.garbage_before_reply = b"\xffjunk\x04"
        assert (await driver.poll()).channels[0].rate.value == Decimal("20.00")
        assert driver.session.dropped_bytes >= 6
        b.rack.slots[(1, 1)].faults.garbage_before_reply = b""
        b.rack.slots[(1, 1)].faults.reply_delay_s = 0.4
        with pytest.raises(ReplyTimeout):
            await driver.poll()
        b.rack.slots[(1, 1)].faults.reply_delay_s = 0.0
        await asyncio.sleep(0.3)
        assert (await driver.poll()).channels[0].rate.value == Decimal("20.00")


async def test_dropped_rack_connection_is_link_closed():
    async with bench({(1, 1): "20"}) as b:
        await b.drivers[(1, 1)].poll()
        b.server.drop_connections()
        with pytest.raises(LinkClosed):
            for _ in range(3):
                await b.drivers[(1, 1)].poll()


async def test_stuffed_session_works_end_to_end():
    async with bench({(1, 4): "3"}, stuffing=True) as b:
        snapshot = await b.drivers[(1, 4)].poll()
    assert snapshot.channels[0].rate.value == Decimal("3.00")


async def test_rack_answers_getslot_for_an_empty_slot_with_gnerr_811_and_unknown_requests_with_68():
    async with bench({(1, 1): "20"}) as b:
        decoder = FrameDecoder()
        answers = []
        for request in (b"MEM:GETSLOT#12", b"MEM:SET#11", b"MEM:GETSLOT#11"):
            await b.link.write(encode_frame("ComSystem", request))
            frame = None
            while frame is None:
                frame = next((i for i in decoder.feed(await b.link.read()) if isinstance(i, Frame)), None)
            answers.append(codec.parse_records(frame.data))
    assert [(r.position, r.parameter, r.value) for r in answers[0]] == [((1, 2), "GNERR", "811")]
    assert [(r.parameter, r.value) for r in answers[1]] == [("GNERR", "68")]
    assert answers[2][0].parameter == "GNNEW"


async def test_empty_rack_answers_gnerr_11():
    async with bench({}) as b:
        link = b.link
        await link.write(encode_frame("1", b"MEM:GET"))
        decoder, frame = FrameDecoder(), None
        while frame is None:
            frame = next((i for i in decoder.feed(await link.read()) if isinstance(i, Frame)), None)
    assert ("GNERR", "11") in [(r.parameter, r.value) for r in codec.parse_records(frame.data)]


# -- the read-only allowlist (design §2 invariant 1) ------------------------------------


async def test_everything_the_driver_sends_is_on_the_allowlist(caplog):
    assert BccDriver.ALLOWED_COMMANDS == ALLOWED_REQUESTS == {"ADMIN:ALIVE", "ADMIN:VERSION", "MEM:GET", "ACK"}
    caplog.set_level(TRACE, logger="pumpgw.wire.rack1.tx")
    async with bench({(1, 1): "20", (2, 2): "1"}) as b:
        for driver in b.drivers.values():
            await driver.identify()
            await driver.poll()
    sent = bytes.fromhex(" ".join(r.getMessage() for r in caplog.records if r.name == "pumpgw.wire.rack1.tx"))
    items = FrameDecoder().feed(sent)
    requests = {i.data.decode() for i in items if isinstance(i, Frame)}
    assert requests == {"ADMIN:ALIVE", "ADMIN:VERSION", "MEM:GET"}
    assert all(isinstance(i, Frame) or getattr(i, "ack", False) for i in items)
    assert set(b.rack.requests) == requests


@pytest.mark.parametrize("command", ["MEM:SET#11", "ADMIN:RESET", "MEM:GETSLOT#11", "NAK", "MEM:GET\x03"])
async def test_send_refuses_anything_off_the_allowlist_at_driver_and_session(command):
    async with bench({(1, 1): "20"}) as b:
        driver = b.drivers[(1, 1)]
        with pytest.raises(ForbiddenCommand):
            await driver._send(command)
        with pytest.raises(ForbiddenCommand):
            await driver.session._send(command, 1.0)
        await asyncio.sleep(0.05)
    assert b.rack.requests == []
