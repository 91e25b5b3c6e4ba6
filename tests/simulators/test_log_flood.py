"""A rack that sends garbage before every reply does not flood the log: one WARNING per source
and window, then a summary (real rack simulator over TCP, real poller, real log pipeline)."""

from __future__ import annotations

import io
import json
import logging

from gateway.log import configure_logging
from gateway.lograte import RateLimitFilter
from tests.simulators.test_poller_faults import rack_setup


async def test_a_garbage_sending_rack_logs_its_first_drop_and_then_a_count_not_a_line_per_reply(monkeypatch):
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    try:
        async with rack_setup(monkeypatch) as (rack, server, sink, poller):
            rack.slots[(1, 1)].faults.garbage_before_reply = b"\xffjunk\x04"
            before = sink.count("p1s1")
            await sink.until(lambda: sink.count("p1s1") >= before + 40, timeout_s=30)
        limiter = next(f for f in logging.getLogger().handlers[0].filters if isinstance(f, RateLimitFilter))
        limiter.flush()
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    drops = [r for r in lines if "dropped" in r["event"] and "byte(s)" in r["event"]]
    summaries = [r for r in lines if "(rate limited)" in r["event"] and r["logger"] == drops[0]["logger"]]
    assert len(drops) == 1, [r["event"] for r in drops][:5]
    assert len(summaries) == 1 and int(summaries[0]["event"].split()[0]) >= 39
