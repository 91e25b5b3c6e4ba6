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
    for _step in range(100):
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


def id_ms(control_id: str) -> int:
    return int(control_id[8:17], 36)  # 9 base-36 digits of UTC ms after the 8-hex prefix


def test_quick_restarts_keep_ids_unique_and_monotonic_without_running_ahead_of_the_clock(tmp_path):
    """220 restarts 10 ms apart (a crash loop) once drifted the ids 7,000 s ahead of the clock."""
    state = tmp_path / "msh10.state"
    wall = SteppingClock(1_700_000_000_000)
    boot = SteppingClock(5_000)  # the boot clock of the same boot: never steps
    issued: list[str] = []
    for _ in range(220):
        gen = ControlIdGenerator(EUI, state_path=state, clock_ms=wall, boot_ms=boot, boot_id="boot-a")
        issued += [gen.next_id() for _ in range(3)]
        wall.ms += 10
        boot.ms += 10
    assert issued == sorted(issued) and len(set(issued)) == len(issued)
    assert id_ms(issued[-1]) - wall.ms <= 1_000


def test_a_restart_after_the_wall_clock_stepped_back_in_the_same_boot_stays_above_the_previous_ids(tmp_path):
    state = tmp_path / "msh10.state"
    wall = SteppingClock(1_700_000_000_000)
    boot = SteppingClock(5_000)
    first = ControlIdGenerator(EUI, state_path=state, clock_ms=wall, boot_ms=boot, boot_id="boot-a")
    before = [first.next_id() for _ in range(50)]
    wall.ms -= 30_000  # NTP steps back 30 s; real time goes on 1 s
    boot.ms += 1_000
    second = ControlIdGenerator(EUI, state_path=state, clock_ms=wall, boot_ms=boot, boot_id="boot-a")
    after = [second.next_id() for _ in range(50)]
    assert max(before) < min(after)


def test_a_clock_jump_forward_is_written_down_before_ids_use_it(tmp_path):
    state = tmp_path / "msh10.state"
    wall = SteppingClock(1_700_000_000_000)
    boot = SteppingClock(5_000)
    first = ControlIdGenerator(EUI, state_path=state, clock_ms=wall, boot_ms=boot, boot_id="boot-a")
    first.next_id()
    wall.ms += 20_000  # the wall clock jumps 20 s forward; the boot clock does not
    jumped = first.next_id()
    wall.ms -= 20_000  # ... and back, then a crash and restart
    second = ControlIdGenerator(EUI, state_path=state, clock_ms=wall, boot_ms=boot, boot_id="boot-a")
    assert second.next_id() > jumped


def test_after_a_reboot_ids_start_above_the_lease(tmp_path):
    state = tmp_path / "msh10.state"
    wall = SteppingClock(1_700_000_000_000)
    first = ControlIdGenerator(EUI, state_path=state, clock_ms=wall, boot_ms=SteppingClock(5_000), boot_id="boot-a")
    last = [first.next_id() for _ in range(10)][-1]
    wall.ms -= 5_000  # rebooted with a clock 5 s behind: elapsed time is unknown
    second = ControlIdGenerator(EUI, state_path=state, clock_ms=wall, boot_ms=SteppingClock(100), boot_id="boot-b")
    assert second.next_id() > last


def test_an_older_one_number_state_file_is_still_read(tmp_path):
    state = tmp_path / "msh10.state"
    state.write_text("1700000060000\n")
    gen = ControlIdGenerator(EUI, state_path=state, clock_ms=SteppingClock(1_700_000_000_000))
    assert id_ms(gen.next_id()) > 1_700_000_060_000
