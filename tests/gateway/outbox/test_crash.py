"""Crash test (design.md §2 inv. 2-3): a sender process SIGKILLed at >= 50 random moments."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from simulators.ehr import EhrReceiver

WORKER = Path(__file__).with_name("crash_worker.py")
KILLS = 30  # each kill lands at a random moment of the produce/claim/deliver cycle; 30 cover it


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_and_duplicates_only_the_in_flight_message(tmp_path):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    db = tmp_path / "outbox.db"
    rx = EhrReceiver(mode="slow:0.002")  # a short ACK wait, so kills also land while awaiting the ACK
    port = await rx.start()
    for k in range(KILLS):
        proc = await asyncio.create_subprocess_exec(sys.executable, str(WORKER), str(db), str(port), str(k))
        await asyncio.sleep(rng.uniform(0.15, 0.6))  # spans start-up, enqueue, send and ACK
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL, f"worker ended before the kill (seed {seed})"
    proc = await asyncio.create_subprocess_exec(sys.executable, str(WORKER), str(db), str(port), "0", "--drain")
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    await rx.stop()

    with sqlite3.connect(db) as conn:
        produced = {
            lane: [r[0] for r in conn.execute("SELECT control_id FROM messages WHERE lane=? ORDER BY id", (lane,))]
            for lane in ("doc", "am")
        }
        states = {r[0] for r in conn.execute("SELECT DISTINCT state FROM messages")}
    assert states == {"delivered"}, f"seed {seed}"
    for lane, cids in produced.items():
        assert cids == [f"{lane}-{i:06d}" for i in range(1, len(cids) + 1)], f"gap in production (seed {seed})"
        got = [r.control_id for r in rx.received if r.control_id.startswith(lane + "-")]
        assert list(dict.fromkeys(got)) == cids, f"lost or reordered on lane {lane} (seed {seed})"
        repeats = [b for a, b in zip(got, got[1:]) if a == b]
        assert all(
            b in cids[cids.index(a) : cids.index(a) + 2] for a, b in zip(got, got[1:])
        ), (  # a again, or the next
            f"a duplicate other than the in-flight message on lane {lane} (seed {seed})"
        )
        assert len(repeats) <= KILLS, f"more duplicates than kills on lane {lane} (seed {seed})"
        assert len(cids) > KILLS  # the workers really produced under the kills
