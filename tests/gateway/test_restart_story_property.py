"""A hypothesis state machine: any sequence of snapshots, communication losses, failed commits
and abrupt restarts tells a true story on the HL7 stream: every alarm onset ends exactly once,
no delivery start follows a start without a stop between, and a pump that went offline is
reported online again.

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

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

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
STATES = [
    ChannelState.INFUSING,
    ChannelState.STOPPED,
    ChannelState.ALARM,
    ChannelState.KVO,
    ChannelState.PAUSED,
    ChannelState.UNKNOWN,
]

channel_st = st.tuples(
    st.sampled_from(STATES), st.sampled_from(["5", "10"]), st.lists(st.sampled_from(ALARMS), max_size=2)
)


def snapshot(at: datetime, channels) -> PumpSnapshot:
    chans = tuple(
        ChannelSnapshot(str(n), state, rate=Quantity(Decimal(rate), "mL/h"), alarms=tuple(alarms))
        for n, (state, rate, alarms) in enumerate(channels, 1)
    )
    return PumpSnapshot("p1", PumpIdentity("CareFusion", "Alaris GP", serial_number="S-1"), chans, received_at=at)


class RestartStory(RuleBasedStateMachine):
    """One pump through snapshots, losses, failed commits and SIGKILL-style restarts.

    After every step the HL7 stream so far must hold the prefix invariants (no end or
    continue without its onset, no onset ended twice, no start after a start, no online
    without an offline); at the end the ward goes quiet and every onset must have ended
    and every offline been followed by an online.
    """

    def __init__(self) -> None:
        super().__init__()
        # tmpfs where there is one: a real SQLite file, but fsync costs nothing there, so many
        # examples (and shrinking a failure) stay quick on a busy machine.
        self.tmp = tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
        self.path = Path(self.tmp.name) / "o.sqlite"
        self.loop = asyncio.new_event_loop()
        self.config = load_config_text(CONFIG)
        self.now = T0
        self.channel_count = 1
        self._start()

    def _start(self) -> None:
        self.outbox = Outbox.open(self.path)
        self.pipeline = Pipeline(self.config, self.outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"))

    def _stream(self) -> list[bytes]:
        with sqlite3.connect(self.path) as db:
            return [bytes(r[0]) for r in db.execute("SELECT payload FROM messages ORDER BY id")]

    @rule(channels=st.lists(channel_st, min_size=1, max_size=2), seconds=st.integers(1, 120))
    def snapshot(self, channels, seconds) -> None:
        self.now += timedelta(seconds=seconds)
        self.channel_count = len(channels)
        self.loop.run_until_complete(self.pipeline.on_snapshot("p1", snapshot(self.now, channels)))

    @rule()
    def comm_lost(self) -> None:
        self.now += timedelta(seconds=5)
        self.loop.run_until_complete(self.pipeline.on_comm_lost("p1", self.now, "no reply"))

    @rule()
    def next_commit_fails(self) -> None:
        fail_inserts(self.outbox, 1)

    @rule()
    def sigkill_and_restart(self) -> None:
        self.outbox.close()  # whatever was not committed is gone with the process
        self._start()

    @invariant()
    def the_story_so_far_holds(self) -> None:
        report = check_story(self._stream())  # open alarms and offline pumps are fine mid-story
        assert not (
            report.unknown_parents
            or report.double_ends
            or report.repeated_onsets
            or report.start_after_start
            or report.online_without_offline
        ), report.summary()
        assert report.duplicates == 0

    def teardown(self) -> None:
        try:
            # Quiet end: the pump answers, every channel infuses without alarms (latched ones resolve).
            for _ in range(2):
                self.now += timedelta(seconds=1)
                quiet = [(ChannelState.INFUSING, "5", [])] * self.channel_count
                self.loop.run_until_complete(self.pipeline.on_snapshot("p1", snapshot(self.now, quiet)))
            report = check_story(self._stream())
            assert report.ok, report.summary() | {
                "orphaned": report.orphaned_onsets,
                "lost_online": report.lost_online,
            }
        finally:
            self.outbox.close()
            self.loop.close()
            self.tmp.cleanup()


RestartStory.TestCase.settings = settings(
    max_examples=80, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_any_history_with_restarts_tells_a_true_story_on_the_hl7_stream = RestartStory.TestCase
