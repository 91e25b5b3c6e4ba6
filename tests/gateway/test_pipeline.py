"""The pipeline from snapshots to the outbox, on the real outbox and encoders."""

from __future__ import annotations

import io
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from drivers.model import Alarm, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.config import load_config_text
from gateway.hl7 import ControlIdGenerator
from gateway.log import configure_logging
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline

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
link = { type = "serial", url = "/dev/ttyUSB0" }
"""
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OCCLUSION = Alarm(code="S", kind="occlusion", text="pump motor stalled")


def snapshot(at: datetime, *, alarms: tuple[Alarm, ...] = ()) -> PumpSnapshot:
    channel = ChannelSnapshot(
        "1",
        ChannelState.ALARM if alarms else ChannelState.INFUSING,
        rate=Quantity(Decimal("15.4"), "mL/h"),
        alarms=alarms,
    )
    return PumpSnapshot("bed01", PumpIdentity("New Era", "NE-1000", firmware="3.928"), (channel,), received_at=at)


def fail_inserts(outbox: Outbox, failures: int, lane: str | None = None) -> None:
    """Make the real outbox's next ``failures`` inserts (into ``lane``, or any) fail inside
    SQLite, as a full disk or an I/O error would: the whole transaction rolls back."""
    left = [failures]

    def check(row_lane: str) -> int:
        if left[0] and (lane is None or row_lane == lane):
            left[0] -= 1
            raise OSError("database or disk is full")
        return 0

    outbox._conn.create_function("pumpgw_test_fail", 1, check)
    outbox._conn.execute(
        "CREATE TEMP TRIGGER IF NOT EXISTS pumpgw_test_fail BEFORE INSERT ON messages "
        "BEGIN SELECT pumpgw_test_fail(NEW.lane); END"
    )


def stored(path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT lane, kind FROM messages ORDER BY id").fetchall()


async def test_alarm_onset_whose_commit_fails_is_retried_on_the_next_snapshot(tmp_path):
    log = io.StringIO()
    configure_logging(level="info", fmt="json", stream=log)
    config = load_config_text(CONFIG)
    outbox = Outbox.open(tmp_path / "o.sqlite")
    pipeline = Pipeline(config, outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"))
    fail_inserts(outbox, 1)
    await pipeline.on_snapshot("bed01", snapshot(T0))  # delivery start (PCD-10) and PCD-01: one commit, fails
    assert stored(tmp_path / "o.sqlite") == []
    await pipeline.on_snapshot("bed01", snapshot(T0 + timedelta(seconds=1), alarms=(OCCLUSION,)))
    # the failed start and PCD-01 are committed first, then the new alarm onset (its own lane) and the stop
    assert stored(tmp_path / "o.sqlite") == [
        ("ehr", "pcd10"),
        ("ehr", "pcd01"),
        ("ehr.alarms", "pcd04"),
        ("ehr", "pcd10"),
    ]
    assert "commit failed; the same messages will be committed before newer ones" in log.getvalue()
    outbox.close()
    logging.getLogger().handlers.clear()


async def test_program_above_the_hard_limit_is_documented_with_its_verdict_in_pcd01(tmp_path):
    """Dopamine at 35 mcg/kg/min in the ICU (hard max 30): PCD-01 carries the verdict rows,
    naming the limit, the values compared and the library, and still passes the checker."""
    from common.pcd.conformance import check_message
    from common.resources import config_dir
    from gateway.druglib import LibraryHolder

    library = LibraryHolder(config_dir() / "drug-library.example.json")
    assert library.reload().in_force
    config = load_config_text(CONFIG.replace('protocol = "ne1000"', 'protocol = "ne1000"\ncare_area = "ICU"'))
    outbox = Outbox.open(tmp_path / "o.sqlite")
    pipeline = Pipeline(config, outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"), library=library)
    channel = ChannelSnapshot(
        "1",
        ChannelState.INFUSING,
        rate=Quantity(Decimal("107.6"), "mL/h"),
        drug="Dopamine",
        concentration=Quantity(Decimal("1.6"), "mg/mL"),
        dose_rate=Quantity(Decimal("35"), "ug/kg/min"),
        patient_weight=Quantity(Decimal("82"), "kg"),
    )
    await pipeline.on_snapshot(
        "bed01", PumpSnapshot("bed01", PumpIdentity("New Era", "NE-1000"), (channel,), received_at=T0)
    )
    outbox.close()
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        (pcd01,) = [bytes(r[0]) for r in db.execute("SELECT payload FROM messages WHERE kind='pcd01'")]
    assert check_message(pcd01) == []
    text = pcd01.decode()
    assert "PUMPGW_DRUGLIB_VERDICT^99PUMPGW|1.1.2." in text and "above_hard_max" in text
    assert "|35|" in text and "|30|" in text  # the values compared, with units on their rows
    assert [v.kind.value for v in pipeline.pumps["bed01"].verdicts["1"]] == ["above_hard_max"]
