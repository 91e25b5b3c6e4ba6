"""Any sequence of snapshots, communication losses, failed commits and abrupt restarts tells
a true story on the HL7 stream: every alarm onset ends exactly once, no delivery start follows
a start without a stop between, and a pump that went offline is reported online again.

Real pipeline, encoders and SQLite outbox; a restart abandons the process state as SIGKILL
does (nothing flushed, nothing closed in order) and starts over on the same file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.model import Alarm, AlarmPriority, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.config import load_config_text
from gateway.hl7 import ControlIdGenerator
from gateway.hl7.story import check_story
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from tests.gateway.test_pipeline import fail_inserts

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
messages = ["pcd10", "pcd04"]
[[pumps]]
id = "p1"
location = "bed 1"
protocol = "alaris"
link = { type = "serial", url = "/dev/ttyUSB0" }
"""
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ALARMS = (
    Alarm("OCC", "occlusion", "Occlusion"),
    Alarm("OCC", "occlusion", "Occlusion", AlarmPriority.MEDIUM),
    Alarm("A?S", "motor_stalled", "pump motor stalled", latched=True),
    Alarm("BAT", "battery_low", "Battery low", AlarmPriority.LOW),
)
STATES = [ChannelState.INFUSING, ChannelState.STOPPED, ChannelState.ALARM, ChannelState.KVO,
          ChannelState.PAUSED, ChannelState.UNKNOWN]

channel_st = st.tuples(st.sampled_from(STATES), st.sampled_from(["5", "10"]),
                       st.lists(st.sampled_from(ALARMS), max_size=2))
step_st = st.one_of(
    st.tuples(st.just("snap"), st.lists(channel_st, min_size=1, max_size=2), st.integers(1, 120)),
    st.tuples(st.just("lost")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("fail_commit")),
)


def snapshot(at: datetime, channels) -> PumpSnapshot:
    chans = tuple(
        ChannelSnapshot(str(n), state, rate=Quantity(Decimal(rate), "mL/h"), alarms=tuple(alarms))
        for n, (state, rate, alarms) in enumerate(channels, 1)
    )
    return PumpSnapshot("p1", PumpIdentity("CareFusion", "Alaris GP", serial_number="S-1"), chans, received_at=at)


async def _run(path: Path, steps) -> list[bytes]:
    config = load_config_text(CONFIG)

    def start() -> tuple[Outbox, Pipeline]:
        outbox = Outbox.open(path)
        return outbox, Pipeline(config, outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"))

    outbox, pipeline = start()
    now = T0
    channel_count = 1
    for step in steps:
        if step[0] == "snap":
            now += timedelta(seconds=step[2])
            channel_count = len(step[1])
            await pipeline.on_snapshot("p1", snapshot(now, step[1]))
        elif step[0] == "lost":
            now += timedelta(seconds=5)
            await pipeline.on_comm_lost("p1", now, "no reply")
        elif step[0] == "fail_commit":
            fail_inserts(outbox, 1)
        else:  # SIGKILL: whatever was not committed is gone with the process
            outbox.close()
            outbox, pipeline = start()
    # Quiet end: the pump answers, every channel infuses without alarms (latched ones resolve).
    for _ in range(2):
        now += timedelta(seconds=1)
        await pipeline.on_snapshot("p1", snapshot(now, [(ChannelState.INFUSING, "5", [])] * channel_count))
    outbox.close()
    with sqlite3.connect(path) as db:
        return [bytes(r[0]) for r in db.execute("SELECT payload FROM messages ORDER BY id")]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step_st, max_size=20))
def test_any_history_with_restarts_tells_a_true_story_on_the_hl7_stream(steps):
    # tmpfs where there is one: a real SQLite file, but fsync costs nothing there, so many
    # examples (and shrinking a failure) stay quick on a busy machine.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        messages = asyncio.run(_run(Path(tmp) / "o.sqlite", steps))
    report = check_story(messages)
    assert report.ok, report.summary() | {
        "orphaned": report.orphaned_onsets, "start_after_start": report.start_after_start,
        "lost_online": report.lost_online, "unknown_parents": report.unknown_parents,
    }
    assert report.duplicates == 0
