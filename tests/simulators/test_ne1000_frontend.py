"""The NE-1000 pump side, byte for byte (reference §2.6, §2.7, §2.9, §2.12), without I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.model import Quantity
from drivers.ne1000 import codec
from drivers.ne1000.framing import ReplyDecoder, encode_basic, encode_safe
from simulators.ne1000 import Faults, Ne1000Line
from simulators.pump_model import DeliveryState, DeviceIdentity, Program, SimulatedPump


class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def make_line(clock: FakeClock | None = None, **faults: object) -> tuple[Ne1000Line, SimulatedPump]:
    clock = clock or FakeClock()
    pump = SimulatedPump(
        DeviceIdentity("New Era Pump Systems", "NE-1000", "S", "3.928"),
        program=Program(Decimal("15.4"), Decimal("250")),
        clock=clock,
        kvo_on_complete=False,
        alarm_on_complete=False,
    )
    return Ne1000Line({0: pump}, faults={0: Faults(**faults)}, clock=clock), pump


def ask(line: Ne1000Line, command: str, *, safe: bool = False) -> list[tuple[str, bool]]:
    wire = encode_safe(command.encode()) if safe else encode_basic(command)
    out = b"".join(o.data for o in line.receive(wire))
    return [(f.data.decode(), f.safe) for f in ReplyDecoder().feed(out)]


def acked(clock: FakeClock | None = None, **faults: object) -> tuple[Ne1000Line, SimulatedPump]:
    line, pump = make_line(clock, **faults)
    assert ask(line, "0") == [("00A?R", False)]
    return line, pump


def test_first_reply_after_power_up_is_the_reset_alarm_then_normal_status():
    line, _ = make_line()
    assert ask(line, "0VER") == [("00A?R", False)]
    assert ask(line, "0VER") == [("00SNE1000V3.928", False)]


def test_queries_are_answered_in_the_format_nesp_lib_expects():
    line, _ = acked()
    assert ask(line, "0RAT") == [("00S15.40MH", False)]
    assert ask(line, "0VOL") == [("00S250.0ML", False)]
    assert ask(line, "0DIS") == [("00SI0.000W0.000ML", False)]
    assert ask(line, "0DIR") == [("00SINF", False)]
    assert ask(line, "0DIA") == [("00S26.59", False)]
    assert ask(line, "0SAF") == [("00S0", False)]


def test_set_commands_change_the_model_and_reply_status_only():
    line, pump = acked()
    assert ask(line, "0RAT 30.0 MH") == [("00S", False)]
    assert ask(line, "0VOL5") == [("00S", False)]
    assert ask(line, "0RUN") == [("00I", False)]
    assert pump.state is DeliveryState.INFUSING and pump.program.rate_ml_h == Decimal("30.0")
    assert pump.program.vtbi_ml == Decimal("5")
    assert ask(line, "0STP") == [("00P", False)]
    assert ask(line, "0STP") == [("00S", False)]
    assert ask(line, "0DIR WDR") == [("00S", False)]
    assert ask(line, "0DIR") == [("00SWDR", False)]


def test_rate_units_cannot_change_while_pumping():
    line, _ = acked()
    ask(line, "0RUN")
    assert ask(line, "0RAT500UM") == [("00I?NA", False)]
    assert ask(line, "0RAT20MH") == [("00I", False)]


def test_unknown_command_gets_a_bare_question_mark_and_bad_value_gets_oor():
    line, _ = acked()
    assert ask(line, "0FOO") == [("00S?", False)]
    assert ask(line, "0SAF300") == [("00S?OOR", False)]
    assert ask(line, "0CLDXYZ") == [("00S?OOR", False)]


def test_bad_crc_gets_com():
    line, _ = acked()
    packet = bytearray(encode_safe(b"0VER"))
    packet[-2] ^= 0x01
    out = b"".join(o.data for o in line.receive(bytes(packet)))
    assert [f.data for f in ReplyDecoder().feed(out)] == [b"00S?COM"]


def test_absent_address_gets_no_answer():
    line, _ = acked()
    assert ask(line, "7VER") == []


def test_saf0_is_answered_in_basic_and_saf_n_already_in_safe_framing():
    line, _ = acked()
    assert ask(line, "0SAF0", safe=True) == [("00S", False)]
    assert ask(line, "0SAF5", safe=True) == [("00S", True)]
    assert ask(line, "0VER", safe=True) == [("00SNE1000V3.928", True)]
    assert ask(line, "0VER") == [("00S?COM", True)]  # a basic packet is not valid in safe mode
    assert ask(line, "0SAF0", safe=True) == [("00S", False)]


def test_safe_mode_watchdog_is_armed_by_a_valid_packet_and_stops_the_pump_on_expiry():
    clock = FakeClock()
    line, pump = acked(clock)
    ask(line, "0RUN")
    ask(line, "0SAF2", safe=True)
    clock.now += 10
    assert line.tick() == []  # not armed yet: no valid packet since SAF (§2.6)
    ask(line, "0", safe=True)
    clock.now += 1.5
    assert line.tick() == []
    clock.now += 1.0
    auto = b"".join(o.data for o in line.tick())
    assert [(f.data, f.safe) for f in ReplyDecoder().feed(auto)] == [(b"00A?T", True)]
    assert pump.state is DeliveryState.STOPPED
    assert line.tick() == []  # the auto-alarm is sent once and does not acknowledge
    assert ask(line, "0", safe=True) == [("00A?T", True)]
    assert ask(line, "0", safe=True) == [("00S", True)]


def test_alarm_reply_acknowledges_and_the_command_is_not_executed():
    line, pump = acked()
    pump.set_alarm("motor_stalled")
    assert ask(line, "0RUN") == [("00A?S", False)]
    assert pump.state is DeliveryState.STOPPED
    assert ask(line, "0RUN") == [("00I", False)]


@pytest.mark.parametrize("safe", [False, True])
def test_faults_corrupt_delay_garbage_and_silence(safe):
    line, _ = acked()
    line.pumps[0].faults.corrupt_checksum = True
    if safe:
        line.pumps[0].safe_timeout_s = 9
    out = b"".join(o.data for o in line.receive(encode_safe(b"0VER") if safe else encode_basic("0VER")))
    items = ReplyDecoder().feed(out)
    assert items and all(isinstance(i, FrameError) for i in items)
    line.pumps[0].faults = Faults(garbage_before_reply=b"zz", reply_delay_s=0.5)
    (item,) = line.receive(encode_safe(b"0VER") if safe else encode_basic("0VER"))
    assert item.data.startswith(b"zz") and item.delay_s == 0.5
    line.pumps[0].faults = Faults(silent=True)
    assert line.receive(encode_basic("0VER")) == []


def test_partial_packet_is_discarded_after_the_inter_byte_timeout():
    line, _ = acked()
    packet = encode_safe(b"0VER")
    assert line.receive(packet[:4]) == []
    line.discard_partial()
    assert ask(line, "0VER") == [("00SNE1000V3.928", False)]
    assert line.frame_errors and line.frame_errors[-1].data == packet[:4]


@given(st.binary(max_size=120))
def test_pump_side_never_raises_on_arbitrary_bytes(data):
    line, _ = make_line()
    for item in line.receive(data):
        assert item.data.startswith(b"\x02")


@given(
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("9999"), places=3),
    st.sampled_from(["MM", "MH", "UM", "UH"]),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("9999"), places=3),
    st.sampled_from(["ML", "UL"]),
)
def test_values_set_by_command_are_read_back_by_the_drivers_parsers(rate, rate_units, volume, volume_units):
    line, _ = acked()
    rate_text, volume_text = codec.format_float(rate), codec.format_float(volume)
    assert ask(line, f"0RAT{rate_text}{rate_units}") == [("00S", False)]
    assert ask(line, f"0VOL{volume_units}") == [("00S", False)]
    assert ask(line, f"0VOL{volume_text}") == [("00S", False)]
    ((rat, _),) = ask(line, "0RAT")
    ((vol, _),) = ask(line, "0VOL")
    assert codec.parse_rate(codec.parse_reply(rat.encode()).data) == Quantity(
        Decimal(rate_text.rstrip(".")), codec.RATE_UNITS[rate_units]
    )
    assert codec.parse_volume(codec.parse_reply(vol.encode()).data).value == Decimal(volume_text.rstrip("."))
