"""The Alaris-style pump side as pure logic (reference §3.3, §3.8): bytes in, bytes out."""

from __future__ import annotations

from decimal import Decimal

from drivers.alaris.framing import Frame, FrameDecoder, encode_frame
from simulators.alaris import AlarisLine
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


def line() -> AlarisLine:
    pump = SimulatedPump(
        DeviceIdentity("BD", "Asena GH", "8002-51740", "Asena Rev 2.1.5"),
        program=Program(Decimal("5"), Decimal("10")),
        running=True,
    )
    return AlarisLine(pump)


def replies(out) -> list[bytes]:
    frames = FrameDecoder().feed(b"".join(o.data for o in out))
    assert all(isinstance(f, Frame) for f in frames)
    return [f.body for f in frames]


def test_each_query_gets_exactly_one_reply_echoing_its_name_matching_reference_captures():
    sim = line()
    out = sim.receive(encode_frame(b"INST_SERIALNO") + encode_frame(b"COMMS_PROTOCOL") + encode_frame(b"ALARM"))
    assert [o.data for o in out][:2] == [b"!INST_SERIALNO^8002-51740|050B\r", b"!COMMS_PROTOCOL^Asena Rev 2.1.5|661A\r"]
    assert replies(out)[2] == b"ALARM^AL_NOALM^ ^ "


def test_bad_crc_esc_and_unknown_commands_get_no_reply():
    sim = line()
    assert sim.receive(b"!INF|4962\r") == []
    assert sim.receive(b"!INF|49\x1b") == []
    assert sim.receive(encode_frame(b"SELF_DESTRUCT")) == []
    assert len(sim.frame_errors) == 2


def test_set_commands_without_remote_control_are_ignored():
    sim = line()
    assert sim.receive(encode_frame(b"INF_RATE^99^ml/h")) == []
    assert sim.pump.program.rate_ml_h == Decimal("5")


def test_a_frame_split_across_reads_is_answered_once_complete():
    sim = line()
    wire = encode_frame(b"INF_VI")
    assert sim.receive(wire[:4]) == []
    assert replies(sim.receive(wire[4:])) == [b"INF_VI^0.000^ml"]
