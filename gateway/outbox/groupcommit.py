"""Group commit: producing messages durably without one fsync per message.

``Outbox.commit`` (and ``enqueue``, one message) appends a unit -- the messages of one event
for every lane plus the pump's clinical state row and the inbound receipts it answers for --
to a batch; one owned flusher task, scheduled for the next loop turn, commits the whole batch
in one transaction, then resolves every waiting caller. No caller returns before its own
commit is durable, and a unit is never split: its messages and state are all in the file or
none is (design.md §2 inv. 9, 10). The byte budget is enforced in the same transaction, a
bounded slice at a time (gateway.outbox.budget).

Durability equal to ``synchronous=FULL``, without its fsync on the event loop (10-70 ms on a
busy disk: every stall lands on alarms and polls): the transaction commits with
``synchronous=NORMAL`` -- its frames are in the WAL file, safe from a process crash -- and the
WAL file is then fsynced on a worker thread, exactly what FULL does inside the commit, before
any caller is answered. Meanwhile the loop runs on and the next units gather into the next
batch; the senders do not claim the rows of a batch until its fsync is done
(:attr:`Writer.unsynced_from`), so nothing is sent that a power loss could still take back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import sqlite3
from collections.abc import Callable, Container, Sequence
from concurrent.futures import ThreadPoolExecutor

from gateway.outbox import budget
from gateway.outbox.errors import OutboxBusy, OutboxClosed
from gateway.outbox.model import InboundReceipt, NewMessage, PumpStateRow
from gateway.outbox.reporting import Reporter
from gateway.outbox.writer import Writer

PRIORITIES = frozenset({"normal", "high"})
INSERT_SQL = (
    "INSERT INTO messages (lane, kind, priority, control_id, payload, size, state, "
    "created_at, ttl_s, expires_at, state_at) VALUES (?,?,?,?,?,?,'pending',?,?,?,?)"
)
INSERT_ROWS_MAX = 100  # rows per INSERT statement (1,000 parameters)


@functools.lru_cache(maxsize=8)
def insert_rows_sql(n: int) -> str:
    """INSERT_SQL for ``n`` rows in one statement, returning their ids. One statement instead of
    ``n`` executions: 30 -> 18 us a row in 20-row batches on a slow machine (same trigger, same
    indexes). Ids are AUTOINCREMENT, given in the order of the VALUES rows, so the returned ids
    sorted are the rows' ids in order (RETURNING itself promises no order)."""
    head, _, row = INSERT_SQL.partition(" VALUES ")
    return f"{head} VALUES {','.join([row] * n)} RETURNING id"


STATE_SQL = (
    "INSERT INTO pump_state (pump_id, version, state, updated_at) VALUES (?,?,?,?) "
    "ON CONFLICT(pump_id) DO UPDATE SET version=excluded.version, state=excluded.state, "
    "updated_at=excluded.updated_at"
)
# a resend that raced its first copy keeps the first record
RECEIPT_SQL = (
    "INSERT OR IGNORE INTO inbound_receipts (source, sender, control_id, digest, received_at) VALUES (?,?,?,?,?)"
)

Unit = tuple[list[tuple], list[tuple], list[tuple], "asyncio.Future[list[int]]"]


class GroupCommit:
    def __init__(
        self,
        writer: Writer,
        report: Reporter,
        *,
        clock: Callable[[], float],
        wake: Callable[[str], None],
        add_bytes: Callable[[int], None],
        in_flight: Callable[[], Container[int]] = frozenset,
    ) -> None:
        self.w = writer
        self.in_flight = in_flight  # ids the senders hold: never thinned
        self.report = report
        self.clock = clock
        self.wake = wake  # a lane got messages: its sender's waiter
        self.add_bytes = add_bytes
        self.closed = False
        self._batch: list[Unit] = []
        self.flusher: asyncio.Task | None = None
        self._recheck_at = 0  # while over budget with nothing to thin: look again past this size
        self._thin = budget.ThinCursor()  # a thinning episode in progress (sliced across commits)
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="pumpgw-outbox-fsync")
        self.syncs = 0  # WAL fsyncs done (diagnosis, tests)

    async def commit(
        self, messages: Sequence[NewMessage], states: Sequence[PumpStateRow], receipts: Sequence[InboundReceipt]
    ) -> list[int]:
        if self.closed:
            raise OutboxClosed(f"outbox {self.w.path} is closed")
        now = self.clock()
        rows = [_row(m, now) for m in messages]
        state_rows = [(s.pump_id, s.version, s.state, now) for s in states]
        receipt_rows = [(r.source, r.sender, r.control_id, r.digest, now) for r in receipts]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[int]] = loop.create_future()
        self._batch.append((rows, state_rows, receipt_rows, fut))
        if self.flusher is None:
            self.flusher = loop.create_task(self._flush(), name="pumpgw-outbox-commit")
        return await fut

    def fail_waiting(self, exc: Exception) -> None:
        """At close: units still waiting for their commit fail (nothing of them is committed)."""
        self.closed = True
        if self.flusher is not None:
            self.flusher.cancel()
        for *_, fut in self._batch:
            if not fut.done():
                fut.set_exception(exc)
        self._batch.clear()
        self._syncer.shutdown(wait=True)  # an fsync under way is finished (milliseconds)

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the rest of this loop turn join the batch
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    ids, outcome = self.w.run("commit", self._commit, batch)
                except Exception as exc:
                    # Each waiting unit gets the error and decides to retry (same bytes, same
                    # control ids); the flusher task itself must not end with it (nobody awaits
                    # the task: "Task exception was never retrieved").
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                first = min((i for unit_ids in ids for i in unit_ids), default=None)
                if first is not None and self.w.unsynced_from is None:
                    self.w.unsynced_from = first  # claims stop short of these rows until synced
                try:
                    await self._sync_wal()
                except BaseException as exc:
                    # Committed but maybe not durable: each caller retries its unit (at worst
                    # a message twice, never one lost); on cancellation (close) they are told.
                    failure = exc if isinstance(exc, Exception) else OutboxClosed(f"outbox {self.w.path} closed")
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                finally:
                    self.w.unsynced_from = None
                for (*_, fut), unit_ids in zip(batch, ids):
                    if not fut.done():
                        fut.set_result(unit_ids)
                for lane in {r[0] for rows, *_ in batch for r in rows}:
                    self.wake(lane)
                self.report.budget(outcome, budget_bytes=self.w.budget_bytes, disk_full=self.w.disk_full)
                if self.w.disk_full:
                    self.w.check_recovered()
        finally:
            self.flusher = None

    async def _sync_wal(self) -> None:
        """fsync the WAL file on the worker thread: what ``synchronous=FULL`` does at commit."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._syncer, _fsync, f"{self.w.path}-wal")
        except OSError as exc:
            raise OutboxBusy(str(self.w.path), f"sync the commit to disk: {type(exc).__name__}: {exc}") from exc
        self.syncs += 1

    def _commit(self, batch: list[Unit]) -> tuple[list[list[int]], budget.BudgetOutcome]:
        conn = self.w.conn
        thin = dataclasses.replace(self._thin)  # restored if the transaction rolls back
        self.w.set_sync("NORMAL")  # and the WAL fsynced off the loop before anyone is answered
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = []
            added = 0
            new_ids = iter(_insert(conn, [row for rows, *_ in batch for row in rows]))
            for rows, state_rows, receipt_rows, _ in batch:
                ids.append([next(new_ids) for _ in rows])
                added += sum(r[5] for r in rows)
                if state_rows:
                    conn.executemany(STATE_SQL, state_rows)
                if receipt_rows:
                    conn.executemany(RECEIPT_SQL, receipt_rows)
            used = budget.used_bytes(conn, self.w.path)
            if self.w.disk_full:  # the budget is what the file system still has, less headroom
                self.w.disk_cap = used + self.w.room() - self.w.headroom
            limit = self.w.budget_bytes
            if self.report.over_budget and used < self._recheck_at and not self._thin.active:  # nothing left
                outcome = budget.BudgetOutcome(used=used, still_over=used > limit)
            else:
                outcome = budget.enforce(
                    conn, used=used, max_bytes=limit, now=self.clock(), cursor=self._thin, in_flight=self.in_flight
                )
            if outcome.still_over:
                self._recheck_at = used + limit // 20
            conn.execute("COMMIT")
        except BaseException:
            self.w.rollback()  # after e.g. SQLITE_FULL SQLite may have rolled back already
            self._thin = thin
            raise
        self.add_bytes(added - outcome.thinned_bytes - outcome.compacted_bytes)
        if outcome.thinned or self.w.disk_full:
            self.w.checkpoint_now()  # give the WAL back (checkpoint policy, gateway.outbox.budget)
        return ids, outcome


def _insert(conn: sqlite3.Connection, rows: list[tuple]) -> list[int]:
    """Insert INSERT_SQL rows, INSERT_ROWS_MAX to a statement; their ids, in the rows' order."""
    ids: list[int] = []
    for start in range(0, len(rows), INSERT_ROWS_MAX):
        chunk = rows[start : start + INSERT_ROWS_MAX]
        got = sorted(r[0] for r in conn.execute(insert_rows_sql(len(chunk)), [p for r in chunk for p in r]))
        if len(got) != len(chunk):
            raise sqlite3.DatabaseError(f"inserted {len(got)} of {len(chunk)} rows")
        ids.extend(got)
    return ids


def _fsync(path: str) -> None:
    """Flush the file's data to the disk (by path: SQLite may have truncated or replaced it;
    gone altogether means every connection closed, which checkpoints and syncs first)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _row(m: NewMessage, now: float) -> tuple:
    """The INSERT_SQL row of ``m``; invalid arguments raise ValueError before anything is
    queued, so one bad caller never fails another's commit."""
    if not m.lane or not m.kind or not m.control_id:
        raise ValueError(f"lane, kind and control_id must be non-empty (got {m.lane!r}, {m.kind!r}, {m.control_id!r})")
    if not m.ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0, got {m.ttl_s!r}")
    if m.priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {sorted(PRIORITIES)}, got {m.priority!r}")
    payload = bytes(m.payload)
    return (m.lane, m.kind, m.priority, m.control_id, payload, len(payload), now, m.ttl_s, now + m.ttl_s, now)
