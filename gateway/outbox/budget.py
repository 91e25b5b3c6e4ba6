"""The byte budget (design.md §2 inv. 8): what gives way when the outbox is full.

What is counted: the bytes the outbox really occupies -- database pages in use plus the
write-ahead log -- not just payloads (row and index overhead and the WAL made a 1 MiB budget
a 6-8 MiB file). Checkpoint policy (:func:`checkpoint_pages`): the WAL is checkpointed
often, by a worker thread (gateway.outbox.checkpoint), or by SQLite's automatic checkpoint every
~5 % of the budget (at least 64, at most 1,000 pages) while the disk is full; it is cut back to
that size (``journal_size_limit``) when it restarts, and after every thinning the WAL is
checkpointed and truncated at once, so the WAL stays a small, counted share of the budget.

Rule, applied inside the enqueue transaction when the counted bytes exceed ``max_bytes``
(the *high-water mark*), down to the *low-water mark* (80 %), so an episode starts once per
fifth of the budget, not at every commit. An episode is done in slices (:class:`ThinCursor`):
each commit looks at no more than :data:`THIN_SLICE` rows, so the cost of one enqueue does not
grow with the backlog (issue 20: 7.9 s stalls at ~900k rows when it was done in one go):

1. delivered rows are compacted at once, whatever their retention;
2. pending *periodic observations* (kind ``pcd01``, priority not ``high``) are thinned by
   age: the most recent ``RECENT_S`` (15 min) stay complete; older ones keep one in 2,
   then one in 4, 8 ... each time their age doubles. If that frees too little, the recent
   window is halved and the tiers move with it (level 1, 2 ...) until it is enough. Which
   rows survive at each resolution is fixed per row (:func:`_rank`), so a row kept at one in
   4 is also kept at one in 2: thinning again never halves what is left again, and the
   oldest data keeps a sample at every level instead of disappearing. Only when even the
   last level is not enough (observations alone fill the budget within seconds, as on a
   full disk) are observations dropped oldest first, whatever their age;
3. PCD-10 events, PCD-04 alarms, messages in flight, quarantined and expired rows are never
   dropped; if they alone exceed the budget the outbox keeps growing and says so.

Within a level, rows are taken oldest first and only as many as needed.

Reporting (in :mod:`gateway.outbox.store`): one alert when thinning starts (a crossing),
then at most one summary WARNING a minute while it goes on; the episode ends when the
pending backlog has fallen below half the budget (checked once a minute).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path

from gateway.outbox.model import THINNABLE_KINDS

LOW_WATER = 0.8
RELEASE = 0.5  # a thinning episode ends below this share of the budget
RECENT_S = 900.0  # observations this young are never thinned at level 0
MAX_LEVEL = 14  # RECENT_S / 2**14 < 0.1 s: at the last level everything old is at its coarsest
ROW_OVERHEAD = 160  # bytes of page space per row beyond its payload (row header, two indexes)
_MASK64 = (1 << 64) - 1


@dataclass
class BudgetOutcome:
    compacted: int = 0
    compacted_bytes: int = 0
    thinned: dict[str, int] = field(default_factory=dict)  # lane -> rows dropped
    thinned_bytes: int = 0
    level: int = -1  # the thinning level used (-1: none)
    still_over: bool = False
    used: int = 0  # bytes counted after enforcement (estimate)


def checkpoint_pages(max_bytes: int, page_size: int) -> int:
    """WAL pages between automatic checkpoints: ~5 % of the budget, 64..1,000 pages."""
    return max(64, min(1000, int(max_bytes * 0.05) // page_size))


def configure_wal(conn: sqlite3.Connection, max_bytes: int, *, automatic: bool = True) -> None:
    """Apply the checkpoint policy (module docstring) to an open outbox connection; with
    ``automatic`` False the checkpoints are left to :mod:`gateway.outbox.checkpoint`."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = checkpoint_pages(max_bytes, page_size)
    conn.execute(f"PRAGMA wal_autocheckpoint={pages if automatic else 0}")
    conn.execute(f"PRAGMA journal_size_limit={pages * page_size}")


def used_bytes(conn: sqlite3.Connection, path: Path) -> int:
    """Database pages in use (inside the open transaction, if any) plus the WAL file."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    try:
        wal = os.stat(f"{path}-wal").st_size
    except OSError:
        wal = 0
    return (pages - free) * page_size + wal


def _rank(row_id: int) -> int:
    """How coarse a resolution keeps this row: kept at "one in 2**k" iff ``k <= _rank``.

    Trailing zero bits of a well-mixed hash of the id (splitmix64 finaliser): half the rows
    have rank >= 1, a quarter >= 2 ... independent of how ids interleave across lanes and
    pumps, and fixed per row, so coarser levels keep a subset of finer ones.
    """
    z = (row_id + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z & -z).bit_length() - 1 if z else 64


def keeps(row_id: int, age_s: float, level: int) -> bool:
    """Whether thinning at ``level`` keeps an observation of this age (module docstring)."""
    recent = RECENT_S / (1 << level)
    if age_s < recent:
        return True
    tier = int(math.log2(age_s / recent)) + 1  # one in 2**tier
    return _rank(row_id) >= tier


THIN_SLICE = 2000  # rows looked at per commit while thinning (a few ms; never the whole table)


@dataclass
class ThinCursor:
    """Where a thinning episode stands between commits: the level being applied and the id
    after which the scan resumes. Thinning is done in slices -- at most :data:`THIN_SLICE`
    rows looked at per commit -- so crossing the budget with a million rows queued costs each
    enqueue a few milliseconds, not seconds of a stalled event loop."""

    active: bool = False
    level: int = 0
    after_id: int = 0
    target: int = 0  # the low-water mark of this episode


def enforce(
    conn: sqlite3.Connection,
    *,
    used: int,
    max_bytes: int,
    now: float | None = None,
    cursor: ThinCursor | None = None,
    slice_rows: int = THIN_SLICE,
    in_flight: Callable[[], Container[int]] = frozenset,
) -> BudgetOutcome:
    """Bring the counted bytes from ``used`` towards ``max_bytes`` (down to the low-water mark).

    Runs inside the caller's open transaction; the caller measures ``used``
    (:func:`used_bytes`) and keeps ``cursor`` between commits. Crossing the high-water mark
    starts an episode; each call then looks at one slice of rows, oldest first, and deletes
    those the current level does not keep, until the low-water mark is reached or every level
    is spent (``still_over``). Freed bytes are estimated (payload + :data:`ROW_OVERHEAD`); the
    next commit measures again. Rows ``in_flight()`` names (claimed by a sender; pending in the
    file) are never thinned.
    """
    outcome = BudgetOutcome(used=used)
    cursor = cursor if cursor is not None else ThinCursor()
    if not cursor.active:
        if used <= max_bytes:
            return outcome
        cursor.active, cursor.level, cursor.after_id = True, 0, 0
        cursor.target = int(max_bytes * LOW_WATER)
        # delivered rows first, whatever their retention (found through the state index)
        n, freed = conn.execute(
            "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM message_totals WHERE state='delivered'"
        ).fetchone()
        if n:
            conn.execute("DELETE FROM messages WHERE state='delivered'")
            used -= freed + n * ROW_OVERHEAD
            outcome.compacted, outcome.compacted_bytes = n, freed
    now = time.time() if now is None else now
    need = used - cursor.target
    kinds = tuple(sorted(THINNABLE_KINDS))
    victims: list[tuple[int, str, int, float]] = []
    chosen: set[int] = set()  # a pass at the next level reads the rows chosen at this one again
    held: Container[int] | None = None  # asked for once, when the first candidate is seen
    freed = 0
    looked = 0
    while need > 0 and looked < slice_rows and cursor.level <= MAX_LEVEL + 1:
        limit = slice_rows - looked
        rows = conn.execute(
            f"SELECT id, lane, size, created_at FROM messages WHERE id > ? AND state='pending' AND priority != 'high' "
            f"AND kind IN ({','.join('?' * len(kinds))}) ORDER BY id LIMIT ?",
            (cursor.after_id, *kinds, limit),
        ).fetchall()
        looked += max(1, len(rows))  # an empty pass still costs a probe (bounded by the levels)
        for r in rows:  # oldest first: the oldest data loses resolution first
            cursor.after_id = r[0]
            if held is None:
                held = in_flight()
            if r[0] in chosen or r[0] in held:
                continue
            if cursor.level > MAX_LEVEL or not keeps(r[0], now - r[3], cursor.level):
                chosen.add(r[0])
                victims.append(r)
                freed += r[2] + ROW_OVERHEAD
                if freed >= need:
                    break
        if freed >= need:
            break
        if len(rows) < limit:  # end of the table: the next level, from the oldest again
            cursor.level += 1
            cursor.after_id = 0
    if victims:
        outcome.level = min(cursor.level, MAX_LEVEL + 1)
        _delete(conn, victims, outcome)
        used -= outcome.thinned_bytes + sum(outcome.thinned.values()) * ROW_OVERHEAD
    exhausted = cursor.level > MAX_LEVEL + 1
    if used <= cursor.target or exhausted:
        cursor.active = False  # episode over: the low-water mark reached, or nothing left to thin
    outcome.used = used
    outcome.still_over = exhausted and used > max_bytes
    return outcome


def pending_bytes(conn: sqlite3.Connection) -> int:
    """Bytes the pending backlog occupies (estimate, from the totals table: no scan)."""
    n, size = conn.execute(
        "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM message_totals WHERE state='pending'"
    ).fetchone()
    return size + n * ROW_OVERHEAD


def _delete(conn: sqlite3.Connection, victims: list[tuple[int, str, int, float]], outcome: BudgetOutcome) -> None:
    conn.executemany("DELETE FROM messages WHERE id = ?", [(v[0],) for v in victims])
    per_lane: dict[str, list[int]] = {}
    for _, lane, size, _created in victims:
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
