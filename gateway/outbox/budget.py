"""The byte budget (design.md §2 inv. 8): what gives way when the outbox file is full.

Rule, applied inside the enqueue transaction whenever the payload bytes of all rows exceed
``max_bytes``:

1. delivered rows are compacted at once, whatever their retention;
2. if still over budget, *pending periodic observations* (kind ``pcd01``, priority not
   ``high``) are thinned, oldest first, by dropping every second one -- the oldest data
   loses time resolution first, recent data stays complete -- pass after pass, until the
   bytes fall to the low-water mark (90 % of the budget);
3. PCD-10 events, PCD-04 alarms, in-flight, quarantined and expired rows are never
   dropped; if they alone exceed the budget the outbox keeps growing and says so.

Every thinning is counted per lane (``thinned`` in ``pumpgw outbox stats``) and raised
as an alert; so is step 3.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from gateway.outbox.model import THINNABLE_KINDS

LOW_WATER = 0.9
MAX_PASSES = 32


@dataclass
class BudgetOutcome:
    compacted: int = 0
    compacted_bytes: int = 0
    thinned: dict[str, int] = field(default_factory=dict)  # lane -> rows dropped
    thinned_bytes: int = 0
    still_over: bool = False


def enforce(conn: sqlite3.Connection, *, total: int, max_bytes: int) -> tuple[int, BudgetOutcome]:
    """Bring ``total`` (payload bytes in the file) under ``max_bytes``; returns the new total.

    Runs inside the caller's open transaction.
    """
    outcome = BudgetOutcome()
    if total <= max_bytes:
        return total, outcome
    n, freed = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE state='delivered'"
    ).fetchone()
    if n:
        conn.execute("DELETE FROM messages WHERE state='delivered'")
        total -= freed
        outcome.compacted, outcome.compacted_bytes = n, freed
    target = int(max_bytes * LOW_WATER)
    kinds = tuple(sorted(THINNABLE_KINDS))
    marks = ",".join("?" * len(kinds))
    for _ in range(MAX_PASSES):
        if total <= target:
            break
        rows = conn.execute(
            f"SELECT id, lane, size FROM messages WHERE state='pending' AND priority != 'high' "
            f"AND kind IN ({marks}) ORDER BY id",
            kinds,
        ).fetchall()
        victims: list[tuple[int, str, int]] = []
        for row in rows[1::2]:  # every second one, oldest first
            if total <= target:
                break
            victims.append(row)
            total -= row[2]
        if not victims:
            break
        conn.executemany("DELETE FROM messages WHERE id = ?", [(v[0],) for v in victims])
        per_lane: dict[str, list[int]] = {}
        for _, lane, size in victims:
            entry = per_lane.setdefault(lane, [0, 0])
            entry[0] += 1
            entry[1] += size
        for lane, (count, size) in per_lane.items():
            conn.execute(
                "INSERT INTO lane_counters (lane, thinned, thinned_bytes) VALUES (?, ?, ?) "
                "ON CONFLICT(lane) DO UPDATE SET thinned = thinned + excluded.thinned, "
                "thinned_bytes = thinned_bytes + excluded.thinned_bytes",
                (lane, count, size),
            )
            outcome.thinned[lane] = outcome.thinned.get(lane, 0) + count
            outcome.thinned_bytes += size
    outcome.still_over = total > max_bytes
    return total, outcome
