"""The loop-lag monitor sees a real blocking call on the loop, logs it once per window,
and hands every sample to an exporter callback."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

import pytest

from gateway.log import configure_logging
from gateway.looplag import LoopLagMonitor


@pytest.fixture
def captured():
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream, rate_limit_window_s=1e-9)  # the monitor limits itself
    yield stream
    logging.getLogger().handlers.clear()


async def test_a_blocking_call_on_the_loop_is_measured_logged_and_exported(captured):
    seen: list[float] = []
    sampled = asyncio.Event()
    monitor = LoopLagMonitor(tick_s=0.01, on_sample=lambda lag: (seen.append(lag), sampled.set()))
    task = asyncio.create_task(monitor.run())
    try:
        await sampled.wait()  # the monitor is sleeping its tick now
        sampled.clear()
        time.sleep(0.15)  # blocks the loop: the monitor wakes at least 140 ms late
        while monitor.max_s < 0.1:
            await sampled.wait()
            sampled.clear()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert monitor.exceeded >= 1 and max(seen) == monitor.max_s >= 0.14
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    late = [line for line in lines if line["event"] == "event loop ran late"]
    assert len(late) == 1 and late[0]["worst_ms"] >= 140 and late[0]["threshold_ms"] == 20.0


def test_lag_within_the_threshold_is_counted_but_not_logged(captured):
    monitor = LoopLagMonitor()
    for lag in (0.001, 0.019, 0.02):
        monitor.record(lag)
    assert (monitor.samples, monitor.exceeded, monitor.max_s) == (3, 0, 0.02)
    assert "ran late" not in captured.getvalue()


def test_repeated_stalls_make_one_line_per_window_with_the_worst_and_the_count(captured):
    now = [0.0]
    monitor = LoopLagMonitor(log_every_s=60, clock=lambda: now[0])
    monitor.record(0.05)  # logged at once
    for lag in (0.03, 0.5, 0.04):
        now[0] += 10
        monitor.record(lag)  # within the minute: counted
    now[0] += 40
    monitor.record(0.021)  # a minute after the first line: the summary
    late = [json.loads(x) for x in captured.getvalue().splitlines()]
    assert [(x["worst_ms"], x["times"]) for x in late] == [(50.0, 1), (500.0, 4)]
    assert monitor.exceeded == 5
