"""HL7 encoder throughput against plain string assembly, with hl7apy beside it (issue 5 item 5).

Run from the repository root:  python bench/hl7_bench.py [--seconds 0.5]

Baselines, measured in the same run:
* "plain assembly": the very same message bytes rebuilt from pre-formatted segment
  pieces with f-strings and one join (no escaping, no lookups, no number or time
  formatting) — the floor any encoder can reach in Python;
* "str.split": an ACK split into segments and fields, MSA-1/MSA-2 picked out.
Goal: our encoder >= 0.25x plain assembly. hl7apy figures (build = parse each segment and
assemble a Message, then to_er7; parse = parse_message) are printed for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hl7apy.consts import VALIDATION_LEVEL  # noqa: E402
from hl7apy.core import Message  # noqa: E402
from hl7apy.parser import parse_message as hl7apy_parse  # noqa: E402
from hl7apy.parser import parse_segment  # noqa: E402

from common.pcd.parse import parse_message  # noqa: E402
from drivers.model import ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity  # noqa: E402
from gateway.events.model import EventKind, PumpEvent  # noqa: E402
from gateway.hl7 import ControlIdGenerator, EncodeContext, PumpInfo, encode_pcd01, encode_pcd10  # noqa: E402

EUI = "0012211839000001"


def q(value: str, unit: str) -> Quantity:
    return Quantity(Decimal(value), unit)


def inputs() -> tuple[EncodeContext, PumpSnapshot, PumpEvent]:
    ctx = EncodeContext(
        site="stmarys",
        ward="icu-3",
        gateway_id="gw1",
        eui64=EUI,
        control_ids=ControlIdGenerator(EUI),
        receiving_application="DOC_VENDOR",
        pumps={"bed07": PumpInfo("bed07", location="ICU-3 bed 7", care_area="Crit Care")},
    )
    dopamine = ChannelSnapshot(
        "A",
        ChannelState.INFUSING,
        rate=q("15.4", "mL/h"),
        vtbi=q("250.0", "mL"),
        volume_infused=q("0.0", "mL"),
        drug="Dopamine",
        concentration=q("1.6", "mg/mL"),
        dose_rate=q("5.00", "ug/kg/min"),
        patient_weight=q("82.0", "kg"),
    )
    heparin = ChannelSnapshot(
        "B",
        ChannelState.PAUSED,
        rate=q("12", "mL/h"),
        vtbi=q("50", "mL"),
        volume_infused=q("7.25", "mL"),
        drug="Heparin",
        concentration=q("100", "[iU]/mL"),
    )
    snap = PumpSnapshot(
        "bed07",
        PumpIdentity("B. Braun", "Space", "SP-1", drug_library_version="DL1"),
        (dopamine, heparin),
        datetime.now(UTC),
        device_time=datetime.now(),
    )
    event = PumpEvent(
        EventKind.DELIVERY_START,
        "bed07",
        datetime.now(UTC),
        channel_id="A",
        snapshot=PumpSnapshot("bed07", snap.identity, (dopamine,), snap.received_at),
    )
    return ctx, snap, event


def plain_assembly(message: bytes):
    """Hand-written template filling: the same segments from values already formatted as strings.

    Each OBX is one f-string over its field values, as the encoder writes it, but without
    walking the model, escaping, formatting numbers and times, or looking up codes.
    """
    segments = message.decode().split("\r")[:-1]
    msh = segments[0].split("|")
    head = segments[1:4]
    rows = []
    for seg in segments[4:]:
        f = seg.split("|") + [""] * 19
        rows.append((f[2], f[3], f[4], f[5], f[6], f[11], f[14], f[17], f[18]))

    def build(control_id: str, now: str) -> bytes:
        out = [
            f"MSH|^~\\&|{msh[2]}|{msh[3]}|{msh[4]}|{msh[5]}|{now}||{msh[8]}|{control_id}|{msh[10]}|2.6|||AL|"
            f"{msh[15]}|{msh[16]}|{msh[17]}|{msh[18]}||{msh[20]}",
            *head,
        ]
        for n, (vt, code, sub, value, unit, status, when, category, equipment) in enumerate(rows, start=1):
            out.append(
                f"OBX|{n}|{vt}|{code}|{sub}|{value}|{unit}|||||{status}|||{when}|||{category}|{equipment}".rstrip("|")
            )
        return ("\r".join(out) + "\r").encode()

    return build


def rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def hl7apy_build(er7: bytes):
    segments = er7.decode().split("\r")[:-1]

    def build() -> str:
        msg = Message("ORU_R01", version="2.6", validation_level=VALIDATION_LEVEL.TOLERANT)
        msg.children = []
        for text in segments:
            msg.add(parse_segment(text, version="2.6", validation_level=VALIDATION_LEVEL.TOLERANT))
        return msg.to_er7()

    return build


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    ctx, snap, event = inputs()
    print(f"{'what':44} {'msgs/s':>12} {'vs baseline':>12}")
    for name, encode in (
        ("PCD-01, 2 channels", lambda: encode_pcd01(snap, ctx, pump_id="bed07")),
        ("PCD-10, delivery start", lambda: encode_pcd10(event, ctx)),
    ):
        _cid, sample = encode()
        base = plain_assembly(sample)
        msh = sample.decode().split("|")
        if base(_cid, msh[6]) != sample:  # the baseline must write the very same bytes
            raise SystemExit(f"{name}: the plain-assembly baseline does not reproduce the encoder's bytes")
        base_rate = rate(lambda base=base: base("390000010IFSJYKAG00", "20240101120000+0000"), args.seconds)
        ours = rate(encode, args.seconds)
        apy_build = rate(hl7apy_build(sample), max(args.seconds, 1.0))
        text = sample.decode()
        apy_parse = rate(
            lambda text=text: hl7apy_parse(text, validation_level=VALIDATION_LEVEL.TOLERANT), max(args.seconds, 1.0)
        )
        rows = sample.count(b"\rOBX|")
        print(f"{name + f' ({rows} OBX)':44}")
        print(f"{'  plain assembly (baseline)':44} {base_rate:12,.0f} {1.0:11.2f}x")
        print(f"{'  pumpgw encoder':44} {ours:12,.0f} {ours / base_rate:11.2f}x  (goal >= 0.25x)")
        print(f"{'  hl7apy build (parse_segment + to_er7)':44} {apy_build:12,.0f} {apy_build / base_rate:11.4f}x")
        print(f"{'  hl7apy parse_message':44} {apy_parse:12,.0f} {apy_parse / base_rate:11.4f}x")
    ack = b"MSH|^~\\&|EHR|H|PUMPGW|W|20240101120000+0000||ACK^R01^ACK|A1|P|2.6\rMSA|AA|390000010IFSJYKAG00\r"

    def split_baseline() -> tuple[str, str]:
        for segment in ack.decode().split("\r"):
            if segment.startswith("MSA"):
                fields = segment.split("|")
                return fields[1], fields[2]
        return "", ""

    print("ACK, 2 segments")
    base_rate = rate(split_baseline, args.seconds)
    print(f"{'  str.split (baseline)':44} {base_rate:12,.0f} {1.0:11.2f}x")
    try:
        from gateway.mllp import ack as ack_module  # the outbox helper's parser, when merged
    except ImportError:
        print("  gateway.mllp.ack: not in this tree (the outbox helper's ACK parser is benchmarked there)")
    else:
        parse_ack = getattr(ack_module, "parse_ack", None)
        if parse_ack is not None:
            ours = rate(lambda: parse_ack(ack), args.seconds)
            print(f"{'  gateway.mllp.ack.parse_ack':44} {ours:12,.0f} {ours / base_rate:11.2f}x")
    tolerant = rate(lambda: parse_message(ack), args.seconds)
    print(f"{'  common.pcd.parse (checker, tolerant)':44} {tolerant:12,.0f} {tolerant / base_rate:11.2f}x")
    apy = rate(lambda: hl7apy_parse(ack.decode(), validation_level=VALIDATION_LEVEL.TOLERANT), args.seconds)
    print(f"{'  hl7apy parse_message':44} {apy:12,.0f} {apy / base_rate:11.4f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
