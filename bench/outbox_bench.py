"""Durable enqueue throughput of the outbox vs bare SQLite loops on the same disk.

    python bench/outbox_bench.py [--n 20000] [--dir DIR]

Baselines (same file system, WAL, synchronous=FULL): one INSERT + COMMIT per row, and
INSERT x10 + COMMIT. Outbox figures: a burst (many producers enqueue at once, group
commit per loop turn) and one sequential producer (one commit per message).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.outbox import Outbox  # noqa: E402


def payload(i: int) -> bytes:
    return (
        f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|C{i:08d}|P|2.6\r"
        f"OBX|1|NM|158775^MDC_FLOW_FLUID_PUMP^MDC|1.1.1.1|{i % 500}.5|263762^MDC_DIM_MILLI_L_PER_HR^MDC|||||R\r"
    ).encode()


def bare(path: Path, n: int, batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, lane TEXT, payload BLOB)")
    t = time.perf_counter()
    for start in range(0, n, batch):
        conn.execute("BEGIN")
        for i in range(start, min(n, start + batch)):
            conn.execute("INSERT INTO m (lane, payload) VALUES (?, ?)", ("doc", payload(i)))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - t)
    conn.close()
    return rate


async def outbox_burst(path: Path, n: int, producers: int) -> float:
    ob = Outbox.open(path)

    async def producer(p: int) -> None:
        for i in range(p, n, producers):
            await ob.enqueue(lane="doc", kind="pcd01", control_id=f"C{i:08d}", payload=payload(i), ttl_s=3600)

    t = time.perf_counter()
    await asyncio.gather(*(producer(p) for p in range(producers)))
    rate = n / (time.perf_counter() - t)
    ob.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dir", type=Path, default=None, help="directory on the disk to measure (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        d = Path(d)
        single = bare(d / "bare1.db", args.n // 4, 1)
        batched = bare(d / "bare10.db", args.n, 10)
        burst = asyncio.run(outbox_burst(d / "burst.db", args.n, 200))
        seq = asyncio.run(outbox_burst(d / "seq.db", args.n // 4, 1))
    print(f"bare SQLite FULL, 1 row/commit : {single:10.0f} rows/s")
    print(f"bare SQLite FULL, 10 rows/commit: {batched:10.0f} rows/s")
    print(
        f"outbox enqueue, burst (200 producers): {burst:10.0f} msgs/s  = {burst / batched:.2f}x batched-10 (goal >= 0.5x)"
    )
    print(f"outbox enqueue, one producer         : {seq:10.0f} msgs/s  = {seq / single:.2f}x single-row")


if __name__ == "__main__":
    main()
