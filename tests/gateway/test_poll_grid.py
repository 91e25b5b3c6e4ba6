"""Polls are scheduled on a fixed grid: a late poll is late, not lost."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.poller.link_poller import next_slot

intervals = st.floats(0.05, 600, allow_nan=False)


@given(interval=intervals, start=st.floats(1, 1e6), lateness=st.lists(st.floats(0, 0.99), min_size=1, max_size=200))
def test_polls_that_run_late_by_less_than_an_interval_keep_the_configured_rate(interval, start, lateness):
    scheduled = start
    for late in lateness:  # each poll runs up to 99 % of an interval after its slot
        scheduled = next_slot(scheduled, scheduled + late * interval, interval)
    # n polls took exactly n intervals: none was lost to the lateness
    assert abs(scheduled - (start + len(lateness) * interval)) <= 1e-6 * max(1.0, scheduled)


@given(interval=intervals, start=st.floats(1, 1e6), behind=st.floats(1.001, 1000))
def test_a_poll_a_whole_interval_behind_restarts_the_grid_instead_of_a_burst(interval, start, behind):
    now = start + behind * interval
    assert next_slot(start, now, interval) == now + interval


def test_the_first_poll_starts_the_grid_from_now():
    assert next_slot(0.0, 5000.0, 2.0) == 5002.0
