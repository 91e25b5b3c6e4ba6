"""Drain rate of an outbox backlog into the local EHR receiver vs a bare asyncio MLLP loop,
and alarm latency while that backlog drains.

    python bench/mllp_bench.py [--backlog 100000] [--alarms 200]

Baseline: one connection, one message in flight, ``str.split`` ACK check, no outbox,
against the same receiver in the same process. The sender path adds the durable state
transition per message (SQLite commit, synchronous=NORMAL) and the full ACK parse.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.mllp.sender import MllpSender  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402
from simulators.ehr import EhrReceiver  # noqa: E402


def payload(cid: str, kind: str = "ORU^R01^ORU_R01") -> bytes:
    return (
        f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||{kind}|{cid}|P|2.6\r"
        f"OBX|1|NM|158775^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1|12.5|263762^MDC_DIM_MILLI_L_PER_HR^MDC|||||R\r"
    ).encode()


class Arrivals:
    """When the receiver got each alarm (MSH-10 ``ALARM...``): the EHR simulator's checker.
    A waiter is woken by the arrival itself -- a polling wait spun the loop while an alarm
    was on its way and took CPU from the drain being measured."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.at: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Future[float]] = {}

    def __call__(self, raw: bytes) -> list[str]:
        if b"|ALARM" in raw[:200]:
            cid = raw.split(b"|", 10)[9].decode()
            self.at[cid] = at = self.clock()
            fut = self._waiting.pop(cid, None)
            if fut is not None and not fut.done():
                fut.set_result(at)
        return []  # no findings: the checker only times

    async def wait(self, cid: str) -> float:
        if cid in self.at:
            return self.at[cid]
        fut = self._waiting[cid] = asyncio.get_running_loop().create_future()
        return await fut


async def alarm_round_trip(ob: Outbox, arrivals: Arrivals, cid: str) -> float:
    """Enqueue one PCD-04 on the alarm lane and wait until the receiver has it: seconds taken."""
    t0 = arrivals.clock()
    await ob.enqueue(lane="am", kind="pcd04", control_id=cid, payload=payload(cid, "ORU^R40^ORU_R40"), ttl_s=300)
    return await arrivals.wait(cid) - t0


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes) -> bytes:
    """The bare loop's exchange: one framed message out, the reply's frame content back."""
    writer.write(b"\x0b" + message + b"\x1c\r")
    await writer.drain()
    buf = b""
    while not buf.endswith(b"\x1c\r"):
        buf += await reader.read(65536)
    return buf[1:-2]


async def bare_loop(n: int) -> float:
    rx = EhrReceiver()
    port = await rx.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t = time.perf_counter()
    for i in range(n):
        cid = f"B{i:08d}"
        reply = await round_trip(reader, writer, payload(cid))
        if reply.decode().split("\r")[1].split("|")[2] != cid:
            raise RuntimeError("bad ACK")
    rate = n / (time.perf_counter() - t)
    writer.close()
    await rx.stop()
    return rate


async def drain(path: Path, n: int, alarms: int) -> tuple[float, list[float]]:
    ob = Outbox.open(path)
    for start in range(0, n, 1000):
        await asyncio.gather(
            *(
                ob.enqueue(lane="doc", kind="pcd01", control_id=f"C{i:08d}", payload=payload(f"C{i:08d}"), ttl_s=86400)
                for i in range(start, min(n, start + 1000))
            )
        )
    rx = EhrReceiver()
    port = await rx.start()
    rx.checker = arrivals = Arrivals()
    kw = dict(host="127.0.0.1", port=port, ack_timeout_s=5, connect_timeout_s=5, initial_backoff_s=0.1, max_backoff_s=1)
    doc, am = MllpSender(ob, lane="doc", **kw), MllpSender(ob, lane="am", **kw)
    latencies: list[float] = []
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(doc.run()), tg.create_task(am.run())]
        t = time.perf_counter()
        sent = 0
        while doc.delivered < n:
            if sent < alarms and doc.delivered >= sent * n // (alarms + 1):
                latencies.append(await alarm_round_trip(ob, arrivals, f"ALARM{sent:05d}"))
                sent += 1
            await asyncio.sleep(0.005)
        rate = n / (time.perf_counter() - t)
        for task in tasks:
            task.cancel()
    await rx.stop()
    ob.close()
    return rate, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--alarms", type=int, default=200)
    args = ap.parse_args()
    base = asyncio.run(bare_loop(min(args.backlog, 30_000)))
    with tempfile.TemporaryDirectory() as d:
        rate, lat = asyncio.run(drain(Path(d) / "o.db", args.backlog, args.alarms))
    lat_ms = sorted(x * 1000 for x in lat)
    p99 = lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))]
    print(f"bare asyncio MLLP loop (1 in flight, str.split ACK): {base:8.0f} msgs/s")
    print(
        f"outbox drain of {args.backlog} messages via MllpSender: {rate:8.0f} msgs/s = {rate / base:.2f}x (goal >= 0.5x)"
    )
    print(
        f"alarm latency while draining ({len(lat_ms)} alarms, enqueue -> received): "
        f"p50 {statistics.median(lat_ms):.2f} ms, p99 {p99:.2f} ms, max {lat_ms[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
