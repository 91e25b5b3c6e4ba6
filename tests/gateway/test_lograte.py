"""Per-source log rate limiting: first line, counted suppression, summary, ERROR never limited."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gateway.log import configure_logging
from gateway.lograte import RateLimitFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(window_s: float = 60.0):
    clock, out = Clock(), []
    limiter = RateLimitFilter(window_s, clock=clock, emit=out.append)
    return limiter, clock, out


def rec(msg: str, *args, level: int = logging.WARNING, name: str = "pumpgw.poller") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_flooding_link_passes_its_first_line_then_one_summary_per_window():
    limiter, clock, out = make()
    passed = [limiter.filter(rec("%s: garbage from pump", "link-a")) for _ in range(170)]
    assert passed.count(True) == 1 and limiter.suppressed_total == 169
    clock.now += 61
    assert limiter.filter(rec("%s: garbage from pump", "link-a"))  # a new window starts
    assert len(out) == 1
    summary = out[0]
    assert summary.getMessage() == "169 more like the previous line from link-a in the last 60 s (rate limited)"
    assert summary.levelno == logging.WARNING and summary.name == "pumpgw.poller"


def test_one_noisy_link_never_silences_another():
    limiter, _clock, _out = make()
    for _ in range(50):
        limiter.filter(rec("%s: garbage from pump", "link-a"))
    assert limiter.filter(rec("%s: garbage from pump", "link-b"))
    assert limiter.filter(rec("%s: something else", "link-a"))


@pytest.mark.parametrize("level", [logging.ERROR, logging.CRITICAL])
def test_error_lines_about_alarms_or_data_loss_are_never_limited(level):
    limiter, _clock, _out = make()
    assert all(limiter.filter(rec("alarm %s not delivered", "lane am", level=level)) for _ in range(500))
    assert limiter.suppressed_total == 0


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_state_changes_at_info_and_debug_detail_are_kept_whole(level):
    """A second drug-library reload (INFO) must not vanish into a count."""
    limiter, _clock, _out = make()
    assert all(limiter.filter(rec("drug library reload %s", "loaded", level=level)) for _ in range(3))


def test_structlog_events_are_grouped_by_their_pump_field():
    limiter, _clock, _out = make()
    a = rec("x")
    a.msg = {"event": "poll.garbage", "pump": "bed1"}
    b = rec("x")
    b.msg = {"event": "poll.garbage", "pump": "bed2"}
    assert limiter.filter(a) and limiter.filter(b)
    assert not limiter.filter(a)


def test_a_quiet_source_gets_its_summary_when_any_later_line_is_logged():
    limiter, clock, out = make()
    for _ in range(5):
        limiter.filter(rec("%s: garbage", "link-a"))
    clock.now += 61
    limiter.filter(rec("unrelated %s", "x", name="pumpgw.other"))
    assert [r.getMessage() for r in out] == [
        "4 more like the previous line from link-a in the last 60 s (rate limited)"
    ]


def test_configured_logging_writes_the_first_line_and_the_summary_at_flush():
    stream = io.StringIO()
    try:
        configure_logging(level="info", fmt="json", stream=stream)
        log = logging.getLogger("pumpgw.poller")
        for _ in range(100):
            log.warning("%s: garbage instead of a reply", "rack1")
        log.error("%s: alarm could not be documented", "rack1")
        log.error("%s: alarm could not be documented", "rack1")
        limiter = next(f for f in logging.getLogger().handlers[0].filters if isinstance(f, RateLimitFilter))
        limiter.flush()
        lines = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    assert lines == [
        "rack1: garbage instead of a reply",
        "rack1: alarm could not be documented",
        "rack1: alarm could not be documented",
        "99 more like the previous line from rack1 in the last 60 s (rate limited)",
    ]
