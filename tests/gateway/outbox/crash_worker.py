"""Crash-test worker: enqueue on two lanes and deliver them to an EHR receiver, until killed.

Run as ``python crash_worker.py DB PORT SEED [--drain]``. Numbering continues from the
last control id committed per lane, so the produced sequence per lane has no gaps. With
``--drain`` it produces nothing and exits once every message is delivered.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from gateway.mllp.sender import MllpSender  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402

LANES = {"doc": ("pcd01", "ORU^R01^ORU_R01"), "am": ("pcd04", "ORU^R40^ORU_R40")}


def last_seq(db: Path, lane: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT control_id FROM messages WHERE lane=? ORDER BY id DESC LIMIT 1", (lane,)).fetchone()
    return int(row[0].split("-")[1]) if row else 0


async def produce(ob: Outbox, lane: str, rng: random.Random) -> None:
    kind, msg_type = LANES[lane]
    seq = last_seq(ob.path, lane)
    while True:
        for _ in range(rng.randint(1, 5)):  # small bursts share a group commit
            seq += 1
            cid = f"{lane}-{seq:06d}"
            payload = f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||{msg_type}|{cid}|P|2.6\rOBX|1|NM|x||{seq}\r"
            await ob.enqueue(lane=lane, kind=kind, control_id=cid, payload=payload.encode(), ttl_s=3600)
        await asyncio.sleep(rng.uniform(0, 0.01))


async def main(db: Path, port: int, seed: int, drain: bool) -> None:
    rng = random.Random(seed)
    ob = Outbox.open(db)
    senders = [
        MllpSender(
            ob,
            lane=lane,
            host="127.0.0.1",
            port=port,
            ack_timeout_s=2,
            connect_timeout_s=2,
            initial_backoff_s=0.01,
            max_backoff_s=0.05,
        )
        for lane in LANES
    ]
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(s.run()) for s in senders]
        if drain:
            while any(s.pending + s.in_flight for s in ob.stats().values()):
                await asyncio.sleep(0.01)
            for t in tasks:
                t.cancel()
        else:
            for lane in LANES:
                tg.create_task(produce(ob, lane, rng))
    ob.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), "--drain" in sys.argv))
