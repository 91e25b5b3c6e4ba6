"""Whatever number a pump sends, it ends as a bounded message or an unknown field, never a crash.

Every driver is driven over its real transport (loopback TCP for the B. Braun rack, a pty for
the NE-1000 and the Alaris) by its simulator with one numeric field replaced by arbitrary
text; the snapshot goes through the real pipeline (drug-library check, HL7 encoders, SQLite
outbox). Hypothesis chooses the text, always including the values that once escaped:
``NaN``, ``1E+999999``, ``1_000``, ``-5``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.resources import config_dir
from drivers.alaris.client import AlarisDriver
from drivers.bbraun_bcc import codec as bcc_codec
from drivers.bbraun_bcc.client import BccDriver, rack_address
from drivers.errors import DriverError
from drivers.ne1000.client import Ne1000Driver
from drivers.transport import open_serial, open_tcp
from gateway.config import load_config_text
from gateway.druglib import LibraryHolder
from gateway.hl7 import ControlIdGenerator
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from simulators.alaris.frontend import AlarisLine
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.ne1000.frontend import Ne1000Line
from simulators.pty_server import PtyServer
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump

HOSTILE = [
    "NaN",
    "sNaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1E+999999",
    "1e1000000",
    "1_000",
    "-5",
    "+5",
    "9" * 400,
    "0." + "0" * 300 + "1",
    " 5",
    "5 ",
    "٣",
    "0x10",
    "",
    ".",
    "-0",
    "1e3",
]
SEPARATORS = {"bbraun-bcc": ",\x1e", "alaris": "^|", "ne1000": ""}
MAX_MESSAGE_BYTES = 64 * 1024


def values(protocol: str) -> st.SearchStrategy[str]:
    banned = SEPARATORS[protocol]
    text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=banned), max_size=30)
    numbers = st.decimals(allow_nan=True, allow_infinity=True).map(str)
    return st.one_of(st.sampled_from(HOSTILE), numbers, text).filter(lambda v: not set(v) & set(banned))


CONFIG = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA03"
[outbox]
path = "unused.sqlite"
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = 2575
messages = ["pcd01", "pcd10", "pcd04"]
[[pumps]]
id = "bed01"
protocol = "ne1000"
care_area = "ICU"
link = { type = "serial", url = "/dev/ttyUSB0" }
"""


def pump() -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity("Sim", "M", "8002-51740", "1.0"),
        program=Program(Decimal("15.4"), Decimal("250"), drug="Dopamine"),
        running=True,
    )


class HostileRack(BccRack):
    """The rack simulator, with the slot's ``INRT`` value replaced by :attr:`value`."""

    value = "1.0"

    def pump_records(self, position, pump):
        return [
            bcc_codec.Record(r.seconds, r.pillar, r.slot, r.parameter, self.value if r.parameter == "INRT" else r.value)
            for r in super().pump_records(position, pump)
        ]


class HostileAlaris(AlarisLine):
    """The Alaris simulator with INF field 4 (rate) and 7 (volume) replaced."""

    value = "1.0"

    def _inf(self) -> str:
        fields = super()._inf().split("^")
        fields[4] = fields[7] = self.value
        return "^".join(fields)


class HostileNe1000(Ne1000Line):
    """The NE-1000 simulator answering ``RAT`` and ``VOL`` with :attr:`value` + units."""

    value = "1.0"

    def _cmd_rate(self, state, args):
        return self.value + "MH" if not args else super()._cmd_rate(state, args)

    def _cmd_volume(self, state, args):
        return self.value + "ML" if not args else super()._cmd_volume(state, args)


class Harness:
    """One event loop, one simulator, one driver and one real pipeline for every example."""

    def __init__(self, protocol: str, tmp_path) -> None:
        self.protocol = protocol
        self.loop = asyncio.new_event_loop()
        self.tmp_path = tmp_path
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        if self.protocol == "bbraun-bcc":
            self.sim = HostileRack()
            self.sim.insert(1, 1, pump())
            self.server = BccRackServer(self.sim)
            await self.server.start()
            self.link = await open_tcp("127.0.0.1", self.server.port, name="rack")
            self.driver = BccDriver(self.link, pump_id="bed01", address=rack_address(1, 1))
            self.driver.session.min_gap_s = 0.0
        else:
            self.sim = HostileAlaris(pump()) if self.protocol == "alaris" else HostileNe1000({0: pump()})
            self.server = PtyServer(self.sim)
            path = await self.server.start()
            self.link = await open_serial(
                path, name=self.protocol, baudrate=9600 if self.protocol == "ne1000" else 38400
            )
            cls = AlarisDriver if self.protocol == "alaris" else Ne1000Driver
            self.driver = cls(self.link, pump_id="bed01", address=None if self.protocol == "alaris" else 0)
        library = LibraryHolder(config_dir() / "drug-library.example.json")
        assert library.reload().in_force
        self.outbox_path = self.tmp_path / f"{self.protocol}.sqlite"
        self.outbox = Outbox.open(self.outbox_path)
        self.pipeline = Pipeline(
            load_config_text(CONFIG), self.outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"), library=library
        )

    async def _one(self, value: str):
        self.sim.value = value
        try:
            snapshot = await self.driver.poll()
        except DriverError:
            return None  # a malformed frame: that poll fails, as for any bad frame
        await self.pipeline.on_snapshot("bed01", snapshot)
        return snapshot

    def run(self, value: str):
        return self.loop.run_until_complete(asyncio.wait_for(self._one(value), 10))

    def close(self) -> None:
        async def stop() -> None:
            await self.link.close()
            await self.server.stop()
            await self.outbox.aclose()

        self.loop.run_until_complete(stop())
        self.loop.close()


@pytest.fixture(params=["bbraun-bcc", "alaris", "ne1000"])
def harness(request, tmp_path):
    h = Harness(request.param, tmp_path)
    yield h
    h.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_pump_value_becomes_a_bounded_message_or_an_unknown_field(harness, data):
    value = data.draw(values(harness.protocol), label="value")
    snapshot = harness.run(value)
    if snapshot is not None:
        for channel in snapshot.channels:
            for q in (channel.rate, channel.vtbi, channel.volume_infused):
                assert q is None or (q.value.is_finite() and Decimal(0) <= q.value < Decimal(100000)), q
    with sqlite3.connect(harness.outbox_path) as db:
        (largest,) = db.execute("SELECT coalesce(max(length(payload)), 0) FROM messages").fetchone()
    assert largest <= MAX_MESSAGE_BYTES


def test_nan_rate_of_one_slot_leaves_the_rate_unknown_and_warns_once(caplog, tmp_path, monkeypatch):
    import logging

    from drivers.bbraun_bcc import client
    from drivers.values import ValueWarnings

    monkeypatch.setattr(client, "_warnings", ValueWarnings(logging.getLogger("pumpgw.drivers.bbraun_bcc")))
    caplog.set_level(logging.WARNING, "pumpgw.drivers.bbraun_bcc")
    h = Harness("bbraun-bcc", tmp_path)
    try:
        snapshots = [h.run(v) for v in ("NaN", "NaN", "1E+999999")]
    finally:
        h.close()
    assert all(s is not None and s.channels[0].rate is None for s in snapshots)
    warnings = [r.getMessage() for r in caplog.records if "field INRT unknown" in r.getMessage()]
    assert len(warnings) == 1 and "bed01" in warnings[0] and "'NaN'" in warnings[0]
