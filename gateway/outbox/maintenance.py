"""Housekeeping of the outbox file, never a long stall of the loop: compaction of delivered
rows in slices, the end of a thinning episode, recovery from a full disk, and the integrity
check on a worker thread after READY."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.log import get_logger
from gateway.outbox import budget, queries, schema
from gateway.outbox.delivery import Delivery
from gateway.outbox.errors import OutboxBusy, OutboxFull
from gateway.outbox.reporting import Reporter
from gateway.outbox.writer import Writer

log = get_logger("pumpgw.outbox")

COMPACT_SLICE_SQL = (
    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE state='delivered' AND state_at <= ? LIMIT ?)"
)
COMPACT_SLICE = 2000  # delivered rows deleted per transaction (a few ms; the loop runs between)
RECOVERY_CHECK_S = 5.0  # how often maintain() looks for free space while degraded


class Maintenance:
    def __init__(
        self,
        writer: Writer,
        lanes: Delivery,
        report: Reporter,
        *,
        retention_s: float,
        check_open: Callable[[], None],
        set_bytes: Callable[[int], None],
    ) -> None:
        self.w = writer
        self.lanes = lanes
        self.report = report
        self.retention_s = retention_s
        self.check_open = check_open  # raises OutboxClosed once the outbox is closed
        self.set_bytes = set_bytes

    async def compact(self) -> int:
        """Delete delivered rows older than the retention; returns rows deleted.

        In slices of :data:`COMPACT_SLICE` rows, one short transaction each, yielding to the
        loop between them: a day of deliveries never stalls polling or alarms."""
        self.check_open()
        self.lanes.apply_log()  # journalled deliveries are delivered rows from here on
        cutoff = time.time() - self.retention_s
        total = 0
        while True:
            self.check_open()
            n = self.w.run("compact", self._compact_slice, cutoff)
            total += n
            if n < COMPACT_SLICE:
                break
            await asyncio.sleep(0)
        if total:
            self.w.checkpoint_now()  # give the WAL back too (gateway.outbox.budget)
        return total

    def _compact_slice(self, cutoff: float) -> int:
        self.w.set_sync("NORMAL")
        conn = self.w.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = conn.execute(COMPACT_SLICE_SQL, (cutoff, COMPACT_SLICE)).rowcount
            # the totals table (also sees the operator CLI's changes), plus the texts of
            # deliveries journalled since the journal was applied
            self.set_bytes(queries.total_bytes(conn) + sum(r[5] for _, r in self.lanes.logged))
            conn.execute("COMMIT")
        except BaseException:
            self.w.rollback()
            raise
        return n

    async def run(self, interval_s: float) -> None:
        """Compact every ``interval_s`` (first right after start-up: opening does not compact)
        and, while the disk is full, look for room every few seconds; until cancelled."""
        last = time.monotonic() - interval_s
        while True:
            await asyncio.sleep(min(interval_s, RECOVERY_CHECK_S))
            if self.w.disk_full:
                self.check_open()
                self.w.check_recovered()
            if time.monotonic() - last < interval_s:
                continue
            last = time.monotonic()
            self.check_open()
            if self.report.thinning:
                backlog = self.w.read("read the backlog", budget.pending_bytes, self.w.conn)
                self.report.end_thinning_episode(backlog, self.w.budget_bytes)
            try:
                n = await self.compact()
            except (OutboxFull, OutboxBusy) as exc:
                log.debug("outbox compaction postponed", error=str(exc))
                continue  # counted; the next round tries again
            if n:
                log.info("outbox compacted delivered rows", rows=n)

    async def check_integrity(self) -> list[str]:
        """``PRAGMA quick_check`` on a worker thread with its own read-only connection (the
        loop keeps running; the check reads every page, minutes for a large cold file). Run
        once after READY (the daemon) instead of before it; a problem is an ERROR and an
        alert -- the outbox keeps working, the operator decides (docs/operations.md)."""
        started = time.monotonic()
        problems = await asyncio.to_thread(schema.integrity_check, self.w.path)
        took = round(time.monotonic() - started, 1)
        if problems:
            details = {"path": str(self.w.path), "problems": problems[:5], "seconds": took}
            log.error("outbox integrity check found problems", **details)
            self.report.alert("outbox_corrupt", details)
        else:
            log.info("outbox integrity check ok", seconds=took)
        return problems
