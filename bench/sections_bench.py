"""Where the CPU goes on the two hot paths of issue 20: thread CPU time per message of each
section, so a change can be judged by the section it touches (the ratio benches only say
whether the whole path got faster).

    .venv/bin/python bench/sections_bench.py [--messages 20000] [--only drain mqtt]

* **drain**: ``backlog_bench.py``'s drain of the head of its 100k backlog (``--cache``): the
  real MllpSender to the EHR simulator on the same loop, its alarm lane idle;
* **mqtt**: ``mqtt_bench.py``'s durable path (50 producers, window 20, its own Mosquitto).

Each section is timed by wrapping the named method with ``time.thread_time_ns()`` (the loop's
thread only; SQLite work on that thread counts, time spent waiting does not). The wrappers
cost ~0.5 us a call, so sections called per message read ~1 us high. Figures are this run's
only; compare sections within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import backlog_bench  # noqa: E402
import mqtt_bench  # noqa: E402

from gateway.log import configure_logging  # noqa: E402
from gateway.mllp import link  # noqa: E402
from gateway.mqtt import paho_io, producer  # noqa: E402
from gateway.outbox import delivery, groupcommit, store, writer  # noqa: E402

SPENT: dict[str, int] = defaultdict(int)
CALLS: dict[str, int] = defaultdict(int)


def timed(owner: object, name: str, label: str) -> Callable[[], None]:
    """Wrap ``owner.name`` (sync or async) to add its thread CPU to ``label``; returns the undo."""
    original = getattr(owner, name)

    if asyncio.iscoroutinefunction(original):

        async def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t = time.thread_time_ns()
            try:
                return await original(*args, **kwargs)
            finally:
                SPENT[label] += time.thread_time_ns() - t
                CALLS[label] += 1
    else:

        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t = time.thread_time_ns()
            try:
                return original(*args, **kwargs)
            finally:
                SPENT[label] += time.thread_time_ns() - t
                CALLS[label] += 1

    setattr(owner, name, wrapper)
    return lambda: setattr(owner, name, original)


def report(title: str, n: int, rate: float, total_ns: int) -> None:
    print(f"{title}: {rate:,.0f} msgs/s; the loop's thread {total_ns / n / 1000:.0f} us CPU per message")
    for label, ns in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<34} {ns / n / 1000:6.1f} us/msg  ({CALLS[label]} calls)")
    SPENT.clear()
    CALLS.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--only", nargs="+", choices=["drain", "mqtt"], default=["drain", "mqtt"])
    ap.add_argument("--cache", type=Path, default=Path("/var/tmp/pumpgw-bench"))
    args = ap.parse_args()
    configure_logging(level="warning", fmt="text")
    n = args.messages
    common = [
        timed(store.Outbox, "claim_many", "Outbox.claim_many (claim window)"),
        timed(delivery.Delivery, "_in_transaction", "  of which the transaction"),
        timed(writer.Writer, "_catch_up", "Writer._catch_up"),
    ]
    if "drain" in args.only:
        args.cache.mkdir(parents=True, exist_ok=True)
        path = backlog_bench.build(args.cache / "backlog-100000.db", 100_000)
        backlog_bench.reset(path)
        undo = [
            timed(store.Outbox, "delivered", "Outbox.delivered (journal line)"),
            timed(store.Outbox, "finish_many", "Outbox.finish_many"),
            timed(link, "parse_ack", "parse_ack"),
        ]
        t = time.thread_time_ns()
        with tempfile.TemporaryDirectory() as tmp:  # backlog_bench's drain, without its alarms
            rate, _ = asyncio.run(backlog_bench.drain(path, min(n, 100_000), 0, Path(tmp)))
        report("drain, head of 100k, receiver on the same loop", min(n, 100_000), rate, time.thread_time_ns() - t)
        backlog_bench.reset(path)
        for u in undo:
            u()
    if "mqtt" in args.only:
        undo = [
            timed(store.Outbox, "finish_many", "Outbox.finish_many"),
            timed(paho_io.PahoSocketDriver, "_on_readable", "paho reading (PUBACKs)"),
            timed(producer.MqttProducer, "render_event", "render_event (payload)"),
            timed(groupcommit.GroupCommit, "_commit", "group commit (inserts)"),
            timed(paho_io.PahoSocketDriver, "flush", "flush"),
        ]
        evs = mqtt_bench.events(n)
        with tempfile.TemporaryDirectory() as tmp:
            proc, port = mqtt_bench.start_broker(Path(tmp))
            try:
                t = time.thread_time_ns()
                took = asyncio.run(mqtt_bench.pumpgw_path(port, evs, 20, Path(tmp) / "o.db", 50))
                report("mqtt durable path, 50 producers", n, n / took, time.thread_time_ns() - t)
            finally:
                proc.terminate()
                proc.wait()
        for u in undo:
            u()
    for u in common:
        u()


if __name__ == "__main__":
    main()
