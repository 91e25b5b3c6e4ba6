"""Cost of "one event, all lanes, one commit with the pump's state" vs the enqueue of before.

    python bench/event_commit_bench.py [--pumps 50] [--snapshots 60] [--dir DIR]

Both sides take the same snapshots through the same event tracker and the same encoders
(PCD-04 to two destinations, PCD-10, the MQTT event payload) into a real SQLite outbox
(WAL, synchronous=FULL) on the same disk, ``--pumps`` pumps concurrently:

* **baseline** -- the round-1 path: tracker, encoders, the MQTT live state, then every
  message committed by its own ``Outbox.enqueue``, awaited one after the other (group
  commit joins concurrent pumps), no clinical state;
* **now** -- ``Pipeline.on_snapshot``: render every lane without I/O, then one
  ``Outbox.commit`` of all of them plus the pump's clinical-state row.

Each snapshot raises or clears an alarm on one of two channels, so every snapshot is one
alarm event (onset or end) on three lanes. Prints events/s of both and the ratio (goal >= 0.8x).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.model import Alarm, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity  # noqa: E402
from gateway.config import load_config_text  # noqa: E402
from gateway.events.tracker import PumpEventTracker  # noqa: E402
from gateway.hl7 import ControlIdGenerator  # noqa: E402
from gateway.mqtt.publisher import MqttPublisher  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402
from gateway.pipeline import Pipeline  # noqa: E402

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OCCLUSION = Alarm("E40", "occlusion", "Occlusion downstream")


def config_text(pumps: int) -> str:
    head = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA03"
[hl7]
pcd01_interval_s = 86400
[outbox]
path = "unused.sqlite"
[mqtt]
enabled = true
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = 2575
messages = ["pcd01", "pcd10", "pcd04"]
[[destinations]]
name = "am"
host = "127.0.0.1"
port = 2576
messages = ["pcd04"]
"""
    return head + "".join(
        f'[[pumps]]\nid = "p{n}"\nlocation = "bed {n}"\nprotocol = "alaris"\n'
        f'link = {{ type = "serial", url = "/dev/ttyUSB{n}" }}\n'
        for n in range(pumps)
    )


def snapshots(pump_id: str, count: int) -> list[PumpSnapshot]:
    out = []
    for i in range(count):
        alarms_a = (OCCLUSION,) if i % 2 else ()
        alarms_b = (OCCLUSION,) if (i // 2) % 2 else ()
        channels = (
            ChannelSnapshot("A", ChannelState.INFUSING, rate=Quantity(Decimal("5"), "mL/h"), alarms=alarms_a),
            ChannelSnapshot("B", ChannelState.INFUSING, rate=Quantity(Decimal("7"), "mL/h"), alarms=alarms_b),
        )
        out.append(
            PumpSnapshot(
                pump_id,
                PumpIdentity("BD", "Alaris GP", serial_number=f"S-{pump_id}"),
                channels,
                received_at=T0 + timedelta(seconds=i),
            )
        )
    return out


def publisher(config, outbox: Outbox) -> MqttPublisher:
    return MqttPublisher(config.mqtt, site="s", gateway_id="g", outbox=outbox, version="bench", config_hash="0")


async def baseline(path: Path, pumps: int, count: int) -> tuple[float, int]:
    """Round 1: encode per destination and ``enqueue`` each message on its own, in turn."""
    config = load_config_text(config_text(pumps))
    outbox = Outbox.open(path)
    pipeline = Pipeline(
        config, outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"), live=publisher(config, outbox)
    )
    renderer = pipeline.renderer  # the same encoders and MQTT payload
    events = 0

    async def pump(n: int) -> None:
        nonlocal events
        tracker = PumpEventTracker(f"p{n}")
        for snap in snapshots(f"p{n}", count):
            pipeline.live.update_state(snap, verdicts={})  # round 1 did this per snapshot too
            for event in tracker.on_snapshot(snap):
                events += 1
                messages, _ = renderer.event(event, identity=tracker.identity, verdicts=None)
                for m in messages:
                    await outbox.enqueue(
                        lane=m.lane, kind=m.kind, control_id=m.control_id, payload=m.payload, ttl_s=m.ttl_s
                    )

    t = time.perf_counter()
    await asyncio.gather(*(pump(n) for n in range(pumps)))
    elapsed = time.perf_counter() - t
    outbox.close()
    return events / elapsed, events


async def now(path: Path, pumps: int, count: int) -> tuple[float, int]:
    config = load_config_text(config_text(pumps))
    outbox = Outbox.open(path)
    pipeline = Pipeline(
        config, outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"), live=publisher(config, outbox)
    )

    async def pump(n: int) -> None:
        for snap in snapshots(f"p{n}", count):
            await pipeline.on_snapshot(f"p{n}", snap)

    t = time.perf_counter()
    await asyncio.gather(*(pump(n) for n in range(pumps)))
    elapsed = time.perf_counter() - t
    events = sum(rt.counters["events"] for rt in pipeline.pumps.values())
    outbox.close()
    return events / elapsed, events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pumps", type=int, default=50)
    ap.add_argument("--snapshots", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3, help="alternate the two sides this many times; best of each")
    ap.add_argument("--dir", type=Path, default=None, help="directory on the disk to measure (default: a temp dir)")
    args = ap.parse_args()
    best_old = best_new = 0.0
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        for r in range(args.rounds):
            old_rate, old_events = asyncio.run(baseline(Path(d) / f"old{r}.db", args.pumps, args.snapshots))
            new_rate, new_events = asyncio.run(now(Path(d) / f"new{r}.db", args.pumps, args.snapshots))
            assert old_events == new_events, (old_events, new_events)
            best_old, best_new = max(best_old, old_rate), max(best_new, new_rate)
    print(
        f"{args.pumps} pumps x {args.snapshots} snapshots, {new_events} alarm events, 3 lanes each "
        f"(best of {args.rounds})"
    )
    print(f"baseline: enqueue per message, no state : {best_old:9.0f} events/s")
    print(
        f"now: one commit per event + state row   : {best_new:9.0f} events/s  = {best_new / best_old:.2f}x "
        f"baseline (goal >= 0.8x)"
    )


if __name__ == "__main__":
    main()
