"""MSH-10: unique within a process, across a clock stepping back, and across restarts."""

from __future__ import annotations

import re

import pytest

from gateway.hl7 import ControlIdGenerator, ControlIdStateError

EUI = "0012211839000001"


class SteppingClock:
    """A wall clock the test moves by hand (the generator's only time source)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_ids_are_19_upper_case_alphanumerics_starting_with_the_eui64_suffix():
    ident = ControlIdGenerator(EUI).next_id()
    assert re.fullmatch(r"39000001[0-9A-Z]{11}", ident)


def test_many_ids_in_one_millisecond_never_repeat_and_sort_in_issue_order():
    gen = ControlIdGenerator(EUI, clock_ms=SteppingClock(1_700_000_000_000))
    ids = [gen.next_id() for _ in range(5000)]  # more than the 1,296 per millisecond
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_a_clock_stepping_backwards_does_not_repeat_ids():
    clock = SteppingClock(1_700_000_000_000)
    gen = ControlIdGenerator(EUI, clock_ms=clock)
    before = {gen.next_id() for _ in range(10)}
    clock.ms -= 3_600_000  # NTP steps the clock back an hour
    after = {gen.next_id() for _ in range(10)}
    assert not before & after


def test_a_restart_after_the_clock_stepped_back_continues_above_the_persisted_mark(tmp_path):
    state = tmp_path / "msh10.state"
    clock = SteppingClock(1_700_000_000_000)
    first = ControlIdGenerator(EUI, state_path=state, clock_ms=clock)
    issued = {first.next_id() for _ in range(100)}
    clock.ms -= 10_000  # restart with a clock 10 s behind
    second = ControlIdGenerator(EUI, state_path=state, clock_ms=clock)
    again = {second.next_id() for _ in range(100)}
    assert not issued & again
    assert max(issued) < min(again)


def test_the_state_file_is_written_once_per_lease_not_per_id(tmp_path):
    state = tmp_path / "msh10.state"
    clock = SteppingClock(1_700_000_000_000)
    gen = ControlIdGenerator(EUI, state_path=state, clock_ms=clock)
    gen.next_id()
    written = state.stat().st_mtime_ns, state.read_text()
    for step in range(100):
        clock.ms += 100  # 10 s in total, inside the 60 s lease
        gen.next_id()
    assert (state.stat().st_mtime_ns, state.read_text()) == written
    clock.ms += 60_000
    gen.next_id()
    assert state.read_text() != written[1]


def test_a_corrupt_state_file_is_a_named_error(tmp_path):
    state = tmp_path / "msh10.state"
    state.write_text("not a number\n")
    with pytest.raises(ControlIdStateError) as info:
        ControlIdGenerator(EUI, state_path=state)
    assert info.value.path == str(state)


def test_two_gateways_at_the_same_instant_issue_different_ids():
    clock = SteppingClock(1_700_000_000_000)
    a = ControlIdGenerator("0012211839000001", clock_ms=clock)
    b = ControlIdGenerator("0012211839000002", clock_ms=clock)
    assert a.next_id() != b.next_id()
