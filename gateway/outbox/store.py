"""The durable outbox: one SQLite file, one lane per destination name.

Threading: none. Every statement runs on the event loop's thread, synchronously. This is a
measured choice: running the statements on a worker thread halved the drain rate of a
lane (4.2k vs 9.4k msgs/s on loopback; each hop costs ~30 us plus GIL hand-overs), while
the longest blocking call is one ``fsync`` per loop turn at most (~0.15 ms on the target
disk class), which pump polling tolerates.

Group commit: ``commit`` (and ``enqueue``, one message) appends a unit -- the messages of
one event for every lane plus the pump's clinical state row -- to a batch; one owned flusher
task, scheduled for the next loop turn, commits the whole batch in one ``synchronous=FULL``
transaction, then resolves every waiting caller. No caller returns before its own commit,
and a unit is never split: its messages and state are all in the file or none is
(design.md §2 inv. 9, 10).

State transitions made by a sender (claim, delivered, quarantined, expired) commit with
``synchronous=NORMAL``: in WAL mode such a commit survives a process crash (SIGKILL), and
becomes durable against power loss with the next FULL commit or checkpoint. Losing one on
power loss only makes the sender resend identical bytes (at-least-once holds); see
docs/integration-engineer.md, "Delivery guarantees".

Full disk (a degraded mode, not a loss): a write that fails for lack of space releases the
reserve file (:mod:`gateway.outbox.reserve`), caps the byte budget at what the outbox holds
now -- periodic observations are thinned to make room, so alarms and events still commit --
and is retried once. One ERROR and one alert when this starts; further failures are counted
and reported with the recovery, which is checked after every commit and every few seconds:
as soon as the file system has room for the reserve again it is re-created and the cap
lifted. A write that still fails raises :class:`OutboxFull` (the caller retries).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.outbox import budget, queries, schema
from gateway.outbox.errors import OutboxClosed, OutboxFull
from gateway.outbox.model import InboundReceipt, LaneStats, NewMessage, OutboxMessage, Outcome, PumpStateRow
from gateway.outbox.reserve import DiskReserve, free_bytes, is_disk_full
from gateway.peertext import bound_text

log = logging.getLogger("pumpgw.outbox")

AlertHook = Callable[[str, dict], None]
PRIORITIES = frozenset({"normal", "high"})
# Every statement of the sender's hot path touches only the rows it changes, through an index
# that fits: the claim reads the lane's head through (lane, state, id); updates find their
# rows by rowid. NOT INDEXED keeps the planner off the (state, state_at) index, through which
# "state='pending' AND id IN (...)" walked every pending row (13.8 ms a batch at 100k
# pending, ~200 ms at 1M). tests/gateway/outbox/test_query_plans.py pins these plans.
CLAIM_SQL = (
    "SELECT id, kind, control_id, payload, priority, created_at, expires_at, attempts, ttl_s "
    "FROM messages WHERE lane = ? AND state = 'pending' ORDER BY id LIMIT ?"
)
MARK_IN_FLIGHT_SQL = (
    "UPDATE messages NOT INDEXED SET state='in_flight', state_at=? WHERE id IN ({}) AND state='pending'"
)
# size: the stored reason and ACK text count in the byte budget (bounded, gateway.textlimits)
FINISH_SQL = (
    "UPDATE messages NOT INDEXED SET state=?, state_at=?, reason=?, ack_text=?, attempts=?, "
    "size=length(payload) + ? WHERE id=?"
)
EXPIRE_SQL = "UPDATE messages NOT INDEXED SET state='expired', state_at=?, reason=? WHERE id=?"
COMPACT_SLICE_SQL = (
    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE state='delivered' AND state_at <= ? LIMIT ?)"
)
CLAIM_BATCH = 32  # rows marked in_flight per query; served from memory one at a time
COMPACT_SLICE = 2000  # delivered rows deleted per transaction (a few ms; the loop runs between)
DEFAULT_RESERVE_BYTES = 4 << 20
SUMMARY_INTERVAL_S = 60.0  # at most one thinning summary per minute
RECOVERY_CHECK_S = 5.0  # how often maintain() looks for free space while degraded


class Outbox:
    """Open with :meth:`open`; async methods must be called from one event loop."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        reader: sqlite3.Connection,
        *,
        max_bytes: int,
        delivered_retention_s: float,
        on_alert: AlertHook | None,
        reserve: DiskReserve | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.clock = clock  # wall clock for created_at and the budget's ages (tests pass their own)
        self.max_bytes = max_bytes
        self.delivered_retention_s = delivered_retention_s
        self.on_alert = on_alert
        self._conn = conn
        self._reader = reader
        self._sync = "FULL"
        self._batch: list[tuple[list[tuple], list[tuple], asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._claimed: dict[str, deque[OutboxMessage]] = {}
        self._bytes = queries.total_bytes(conn)  # the totals table: no scan at start-up
        self._over_budget = False  # alert on crossing the budget, not on every commit
        self._recheck_at = 0  # while over budget with nothing to thin: look again past this size
        self._thin = budget.ThinCursor()  # a thinning episode in progress (sliced across commits)
        self._closed = False
        self._reserve = reserve
        self.disk_full = False  # degraded: no room on the file system (reserve released)
        self._disk_cap: int | None = None  # budget cap while degraded: no growth
        self._full_failures = 0  # writes refused while degraded (reported at recovery)
        self._thinning = False  # in a thinning episode: one alert per crossing
        self._summary: dict[str, int] = {}
        self._summary_bytes = 0
        self._summary_at = float("-inf")
        budget.configure_wal(conn, max_bytes)

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        max_bytes: int = 1 << 30,
        delivered_retention_s: float = 86400.0,
        on_alert: AlertHook | None = None,
        reserve_bytes: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> Outbox:
        """Open or create the file, check and migrate it, and return in-flight rows to
        pending (they were on the wire when the previous process died).

        With ``reserve_bytes`` a reserve file is kept beside it (module docstring). On a full
        disk the reserve is released to open, and the outbox starts degraded -- saying so at
        ERROR -- rather than not at all.
        """
        path = Path(path)
        reserve = DiskReserve(path, reserve_bytes) if reserve_bytes > 0 else None
        released = False
        while True:
            try:
                conn, reader, back = cls._open_files(path)
                break
            except Exception as exc:
                if not (isinstance(exc, OutboxFull) or is_disk_full(exc)) or released or reserve is None:
                    if is_disk_full(exc) and not isinstance(exc, OutboxFull):
                        raise OutboxFull(str(path), "cannot open the outbox") from None
                    raise
                released = reserve.release()
                if not released:
                    raise OutboxFull(str(path), "cannot open the outbox and no reserve is left to release") from None
        outbox = cls(
            path,
            conn,
            reader,
            max_bytes=max_bytes,
            delivered_retention_s=delivered_retention_s,
            on_alert=on_alert,
            reserve=reserve,
            clock=clock,
        )
        if back:
            log.warning("outbox %s: %d message(s) were in flight at the last stop; they will be resent", path, back)
        log.info("outbox %s opened", path)
        if released or (reserve is not None and not reserve.ensure()):
            outbox._enter_disk_full(
                "at start-up"
                + (": the reserve was released to open the outbox" if released else ": no room for the reserve file")
            )
        return outbox

    @staticmethod
    def _open_files(path: Path):
        """Nothing here grows with the backlog (READY waits for it): no integrity check (after
        READY, :func:`schema.integrity_check`), no byte sum (the totals table), no compaction
        (the first :meth:`maintain` round, in slices); the in-flight rows are found through
        the (state, state_at) index and are at most a claim batch per lane."""
        conn = schema.connect(path)
        try:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            back = conn.execute(
                "UPDATE messages SET state='pending', state_at=? WHERE state='in_flight'", (now,)
            ).rowcount
            conn.execute("COMMIT")
            reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10.0)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        return conn, reader, back

    def close(self) -> None:
        """Close the file. Enqueues still waiting for their commit fail with OutboxClosed."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
        for _, _, fut in self._batch:
            if not fut.done():
                fut.set_exception(OutboxClosed(f"outbox {self.path} closed before the commit"))
        self._batch.clear()
        self._reader.close()
        self._conn.close()

    async def aclose(self) -> None:
        """Let the scheduled group commit run, put in-flight rows back to pending, then close.

        On a clean stop the senders have finished or abandoned the message in hand; rows
        still marked in flight (claimed in memory, or on the wire when a sender was cancelled)
        go back to pending in one durable commit, so the next start is not a crash recovery.
        """
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        if not self._closed:
            self._release_in_flight()
        self.close()

    def _release_in_flight(self) -> None:
        try:
            self._set_sync("FULL")
            back = self._conn.execute(
                "UPDATE messages SET state='pending', state_at=? WHERE state='in_flight'", (time.time(),)
            ).rowcount
        except sqlite3.Error as exc:  # the next start does the same (crash recovery)
            log.error("outbox %s: in-flight rows not returned to pending at stop: %s", self.path, exc)
            return
        self._claimed.clear()
        if back:
            log.info("outbox %s: %d in-flight message(s) returned to pending at stop", self.path, back)

    # -- producing ---------------------------------------------------------------------

    async def enqueue(
        self, *, lane: str, kind: str, control_id: str, payload: bytes, ttl_s: float, priority: str = "normal"
    ) -> int:
        """Store one message; returns its id once it is committed with synchronous=FULL.

        If the caller is cancelled while waiting, the message may still be committed and
        delivered (it was already in the batch).
        """
        ids = await self.commit([NewMessage(lane, kind, control_id, payload, ttl_s, priority)])
        return ids[0]

    async def commit(
        self,
        messages: Sequence[NewMessage],
        states: Sequence[PumpStateRow] = (),
        receipts: Sequence[InboundReceipt] = (),
    ) -> list[int]:
        """Commit ``messages`` (any lanes), ``states`` (upserted per pump) and ``receipts``
        (inbound messages this commit answers for, gateway/sources) atomically.

        All or nothing: either every row is in the file (synchronous=FULL) when this returns,
        or it raises and none is. The unit joins the current group commit; a failure of that
        transaction fails every unit in it, and each caller retries its own unit with the same
        objects (same bytes, same control ids). Invalid arguments raise ``ValueError`` before
        anything is queued, so one bad caller never fails another's commit.
        """
        if self._closed:
            raise OutboxClosed(f"outbox {self.path} is closed")
        now = self.clock()
        rows = [self._row(m, now) for m in messages]
        state_rows = [(s.pump_id, s.version, s.state, now) for s in states]
        receipt_rows = [(r.source, r.sender, r.control_id, r.digest, now) for r in receipts]
        fut: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._batch.append((rows, (state_rows, receipt_rows), fut))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="pumpgw-outbox-commit")
        return await fut

    @staticmethod
    def _row(m: NewMessage, now: float) -> tuple:
        if not m.lane or not m.kind or not m.control_id:
            raise ValueError(
                f"lane, kind and control_id must be non-empty (got {m.lane!r}, {m.kind!r}, {m.control_id!r})"
            )
        if not m.ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {m.ttl_s!r}")
        if m.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {sorted(PRIORITIES)}, got {m.priority!r}")
        payload = bytes(m.payload)
        return (m.lane, m.kind, m.priority, m.control_id, payload, len(payload), now, m.ttl_s, now + m.ttl_s, now)

    def receipt(self, source: str, sender: str, control_id: str) -> str | None:
        """The digest of the inbound message committed under this MSH-3 + MSH-10, if any."""
        row = self._conn.execute(
            "SELECT digest FROM inbound_receipts WHERE source=? AND sender=? AND control_id=?",
            (source, sender, control_id),
        ).fetchone()
        return row[0] if row else None

    async def forget_receipts(self, older_than_s: float) -> int:
        """Drop dedup records older than the retention (a sender's resend window is far shorter)."""
        cutoff = self.clock() - older_than_s

        def prune() -> int:
            cur = self._conn.execute("DELETE FROM inbound_receipts WHERE received_at < ?", (cutoff,))
            return cur.rowcount

        return await self._run(prune)

    def load_states(self) -> dict[str, tuple[int, str]]:
        """Every pump's last committed state row: ``pump_id -> (version, JSON text)``."""
        return {r[0]: (r[1], r[2]) for r in self._conn.execute("SELECT pump_id, version, state FROM pump_state")}

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the rest of this loop turn join the batch
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    ids, outcome = self._write(self._commit, batch)
                except Exception as exc:
                    # Each waiting unit gets the error and decides to retry (same bytes, same
                    # control ids); the flusher task itself must not end with it (nobody awaits
                    # the task: "Task exception was never retrieved").
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, _, fut), unit_ids in zip(batch, ids):
                    if not fut.done():
                        fut.set_result(unit_ids)
                for lane in {r[0] for rows, _, _ in batch for r in rows}:
                    self.waiter(lane).set()
                self._report_budget(outcome)
                if self.disk_full:
                    self._check_recovered()
        finally:
            self._flusher = None

    def _commit(self, batch: list) -> tuple[list[list[int]], budget.BudgetOutcome]:
        conn = self._conn
        thin = dataclasses.replace(self._thin)  # restored if the transaction rolls back
        self._set_sync("FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = []
            added = 0
            for rows, (state_rows, receipt_rows), _ in batch:
                ids.append(
                    [
                        conn.execute(
                            "INSERT INTO messages (lane, kind, priority, control_id, payload, size, state, "
                            "created_at, ttl_s, expires_at, state_at) VALUES (?,?,?,?,?,?,'pending',?,?,?,?)",
                            row,
                        ).lastrowid
                        for row in rows
                    ]
                )
                added += sum(r[5] for r in rows)
                if state_rows:
                    conn.executemany(
                        "INSERT INTO pump_state (pump_id, version, state, updated_at) VALUES (?,?,?,?) "
                        "ON CONFLICT(pump_id) DO UPDATE SET version=excluded.version, state=excluded.state, "
                        "updated_at=excluded.updated_at",
                        state_rows,
                    )
                if receipt_rows:  # a resend that raced its first copy keeps the first record
                    conn.executemany(
                        "INSERT OR IGNORE INTO inbound_receipts (source, sender, control_id, digest, received_at) "
                        "VALUES (?,?,?,?,?)",
                        receipt_rows,
                    )
            used = budget.used_bytes(conn, self.path)
            if self.disk_full:  # the budget is what the file system still has, less headroom
                self._disk_cap = used + self._room() - self._headroom
            if self._over_budget and used < self._recheck_at and not self._thin.active:  # nothing left to thin
                outcome = budget.BudgetOutcome(used=used, still_over=used > self.budget_bytes)
            else:
                outcome = budget.enforce(
                    conn, used=used, max_bytes=self.budget_bytes, now=self.clock(), cursor=self._thin
                )
            if outcome.still_over:
                self._recheck_at = used + self.budget_bytes // 20
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # after e.g. SQLITE_FULL SQLite may have rolled back already
                conn.execute("ROLLBACK")
            self._thin = thin
            raise
        self._bytes += added - outcome.thinned_bytes - outcome.compacted_bytes
        if outcome.thinned or self.disk_full:
            try:  # give the WAL back at once (checkpoint policy, gateway.outbox.budget)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a reader holds a snapshot: the next automatic checkpoint does it
        return ids, outcome

    @property
    def budget_bytes(self) -> int:
        """The byte budget in force: ``max_bytes``, or less while the disk is full."""
        return self.max_bytes if self._disk_cap is None else min(self.max_bytes, self._disk_cap)

    # -- full disk -------------------------------------------------------------------------

    def _write(self, fn, *args):
        """Run one write; on "disk full" enter the degraded mode and retry it once."""
        try:
            return fn(*args)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._rollback()
            if not self.disk_full:
                self._enter_disk_full(f"{type(exc).__name__}: {exc}")
        try:
            return fn(*args)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._rollback()
            self._full_failures += 1
            log.debug("outbox %s: write refused, disk still full (%d so far)", self.path, self._full_failures)
            raise OutboxFull(str(self.path)) from None

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _enter_disk_full(self, why: str) -> None:
        """Degraded mode: release the reserve, cap the budget at the current size; one ERROR."""
        self.disk_full = True
        self._full_failures = 0
        released = self._reserve.release() if self._reserve is not None else False
        try:
            used = budget.used_bytes(self._conn, self.path)
        except sqlite3.Error:
            used = self._bytes
        # From now on the budget is the room the file system has, less headroom kept for the
        # WAL frames of state changes (a delivery must still be recordable) and checkpoints.
        self._disk_cap = used + self._room() - self._headroom
        try:  # a small WAL from now on: every frame of it needs disk space before a checkpoint
            budget.configure_wal(self._conn, 0)
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        details = {
            "path": str(self.path),
            "why": why,
            "reserve_released_bytes": self._reserve.size if released else 0,
            "outbox_bytes": self._disk_cap,
        }
        log.error(
            "outbox: the disk is full; running degraded (alarms and events still commit, "
            "periodic observations are thinned to make room) %s",
            details,
        )
        self._alert("outbox_disk_full", details)

    @property
    def _headroom(self) -> int:
        return max(256 * 1024, (self._reserve.size if self._reserve is not None else 0) // 2)

    def _room(self) -> int:
        try:
            return free_bytes(self.path.parent)
        except OSError:
            return 0

    def _check_recovered(self) -> bool:
        """Leave the degraded mode once the file system has room for the reserve again."""
        needed = self._reserve.size if self._reserve is not None else 0
        try:
            room = free_bytes(self.path.parent)
        except OSError:
            return False
        if room < needed + self._headroom:  # room for the reserve and the headroom beside it
            return False
        if self._reserve is not None and not self._reserve.ensure():
            return False
        self.disk_full = False
        self._disk_cap = None
        budget.configure_wal(self._conn, self.max_bytes)
        log.warning(
            "outbox: disk space available again; reserve restored, degraded mode ended %s",
            {"path": str(self.path), "free_bytes": room, "writes_refused_meanwhile": self._full_failures},
        )
        return True

    def _report_budget(self, outcome: budget.BudgetOutcome) -> None:
        """One alert per crossing, one summary a minute (gateway.outbox.budget)."""
        now = time.monotonic()
        if outcome.thinned:
            for lane, count in outcome.thinned.items():
                self._summary[lane] = self._summary.get(lane, 0) + count
            self._summary_bytes += outcome.thinned_bytes
            if not self._thinning:
                self._thinning = True
                details = {
                    "thinned": dict(outcome.thinned),
                    "thinned_bytes": outcome.thinned_bytes,
                    "level": outcome.level,
                    "compacted_delivered": outcome.compacted,
                    "bytes": outcome.used,
                    "max_bytes": self.budget_bytes,
                }
                log.warning("outbox byte budget reached: thinning older periodic observations %s", details)
                self._alert("outbox_budget_thinned", details)
                self._summary, self._summary_bytes, self._summary_at = {}, 0, now
        if self._summary and now - self._summary_at >= SUMMARY_INTERVAL_S:
            log.warning(
                "outbox thinning summary %s",
                {
                    "thinned": self._summary,
                    "thinned_bytes": self._summary_bytes,
                    "bytes": outcome.used,
                    "max_bytes": self.budget_bytes,
                },
            )
            self._summary, self._summary_bytes, self._summary_at = {}, 0, now
        # Alert on the crossing only: an alert is itself committed (MQTT .../alerts), so alerting
        # on every commit while over budget would feed itself.
        if self.disk_full:
            return  # the disk-full ERROR and alert stand for this condition; no flip-flop per commit
        if outcome.still_over and not self._over_budget:
            self._over_budget = True
            details = {"bytes": outcome.used, "max_bytes": self.budget_bytes}
            log.error("outbox over its byte budget with nothing left to thin (events and alarms are kept) %s", details)
            self._alert("outbox_budget_exceeded", details)
        elif not outcome.still_over and self._over_budget:
            self._over_budget = False
            log.warning("outbox back under its byte budget %s", {"bytes": outcome.used, "max_bytes": self.budget_bytes})

    def _end_thinning_episode(self) -> None:
        """Once the backlog has drained (below half the budget), a new thinning is a new crossing."""
        if not self._thinning:
            return
        backlog = budget.pending_bytes(self._conn)
        if backlog < self.budget_bytes * budget.RELEASE:
            self._thinning = False
            if self._summary:
                log.warning(
                    "outbox thinning summary %s", {"thinned": self._summary, "thinned_bytes": self._summary_bytes}
                )
                self._summary, self._summary_bytes = {}, 0
            log.info(
                "outbox backlog well under its byte budget again; thinning episode over %s",
                {"pending_bytes": backlog, "max_bytes": self.budget_bytes},
            )

    def _alert(self, name: str, details: dict) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(name, details)
        except Exception:
            log.exception("outbox alert hook failed for %s", name)

    # -- delivering (one sender per lane) -------------------------------------------------

    def waiter(self, lane: str) -> asyncio.Event:
        """Set whenever a commit adds messages to ``lane``; the lane's sender clears it."""
        event = self._wake.get(lane)
        if event is None:
            event = self._wake[lane] = asyncio.Event()
        return event

    async def reset_lane(self, lane: str) -> int:
        """Return the lane's in-flight rows to pending (a sender starting on the lane)."""
        return await self._run(self._write, self._reset_lane, lane)

    def _reset_lane(self, lane: str) -> int:
        self._claimed.pop(lane, None)
        self._set_sync("NORMAL")
        return self._conn.execute(
            "UPDATE messages SET state='pending', state_at=? WHERE lane=? AND state='in_flight'", (time.time(), lane)
        ).rowcount

    async def claim(self, lane: str) -> OutboxMessage | None:
        """Return the lane's oldest pending message, now in flight (None if the lane is idle).

        Messages whose TTL passed are marked expired on the way (and alerted).
        """
        msg, expired = await self._run(self._write, self._finish_and_claim, None, lane)
        self._report_expired(lane, expired)
        return msg

    async def finish(
        self, msg: OutboxMessage, state: str, *, reason: str = "", ack_text: str = "", claim_next: bool = True
    ) -> OutboxMessage | None:
        """Record the outcome of ``msg`` (delivered, quarantined or expired) and return the
        lane's next message (claimed), unless ``claim_next`` is False."""
        if state not in ("delivered", "quarantined", "expired"):
            raise ValueError(f"finish() state must be delivered, quarantined or expired, got {state!r}")
        # Peer text is bounded (a hostile receiver's 15 MiB AE must not land on disk whole)
        # and counted in the byte budget with the payload (``size``, design.md §2 inv. 8).
        reason, ack_text = bound_text(reason), bound_text(ack_text)
        msg.state, msg.reason, msg.ack_text = state, reason, ack_text  # type: ignore[assignment]
        next_msg, expired = await self._run(self._write, self._finish_and_claim, msg, msg.lane if claim_next else None)
        self._bytes += _text_bytes(reason, ack_text)
        if state == "quarantined":
            self._report_quarantined(msg)
        elif state == "expired":
            expired = [msg, *expired]
        self._report_expired(msg.lane, expired)
        return next_msg

    async def claim_many(self, lane: str, limit: int) -> list[OutboxMessage]:
        """Up to ``limit`` of the lane's oldest pending messages, oldest first, now in flight
        (empty if the lane is idle) -- for a sender that keeps a window in flight.

        Messages whose TTL passed are marked expired on the way (and alerted); they do not
        count towards ``limit``. Rows already claimed by :meth:`claim` come first (they are
        the oldest). One transaction: on an error nothing is claimed.
        """
        if limit < 1:
            raise ValueError(f"claim_many() limit must be >= 1, got {limit!r}")
        msgs, expired = await self._run(self._write, self._claim_many, lane, limit)
        self._report_expired(lane, expired)
        return msgs

    def _claim_many(self, lane: str, limit: int) -> tuple[list[OutboxMessage], list[OutboxMessage]]:
        conn = self._conn
        self._set_sync("NORMAL")
        now = time.time()
        held = self._claimed.get(lane) or deque()  # claimed earlier by claim(): the oldest
        out: list[OutboxMessage] = []
        expired: list[OutboxMessage] = []
        taken = 0  # popped from ``held`` only once committed
        for msg in held:
            if len(out) >= limit:
                break
            taken += 1
            (expired if msg.expires_at <= now else out).append(msg)
        conn.execute("BEGIN IMMEDIATE")
        try:
            while len(out) < limit and taken == len(held):
                want = limit - len(out)
                rows = conn.execute(CLAIM_SQL, (lane, want)).fetchall()
                batch = [_claimed_message(lane, r) for r in rows]
                if batch:
                    ids = [m.id for m in batch]
                    conn.execute(MARK_IN_FLIGHT_SQL.format(",".join("?" * len(ids))), (now, *ids))
                for msg in batch:
                    (expired if msg.expires_at <= now else out).append(msg)
                if len(rows) < want:
                    break
            if expired:
                reasons = [(now, _ttl_reason(m), m.id) for m in expired]
                conn.executemany(EXPIRE_SQL, reasons)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        for _ in range(taken):
            held.popleft()
        for msg in expired:
            msg.state, msg.reason = "expired", _ttl_reason(msg)
        return out, expired

    async def finish_many(self, outcomes: Sequence[Outcome]) -> None:
        """Record every outcome in ONE transaction: all are in the file when this returns, or
        it raises and none is (the caller retries the same outcomes).

        Peer text is bounded and counted in the byte budget as in :meth:`finish`; quarantined
        messages are logged and alerted one by one, expired ones per lane.
        """
        for o in outcomes:
            if o.state not in ("delivered", "quarantined", "expired"):
                raise ValueError(f"finish_many() state must be delivered, quarantined or expired, got {o.state!r}")
        if not outcomes:
            return
        now = time.time()
        rows = []
        for o in outcomes:
            reason, ack_text = bound_text(o.reason), bound_text(o.ack_text)
            rows.append(
                (o.state, now, reason, ack_text, o.message.attempts, _text_bytes(reason, ack_text), o.message.id)
            )
        await self._run(self._write, self._finish_rows, rows)
        expired: dict[str, list[OutboxMessage]] = {}
        for o, row in zip(outcomes, rows):
            msg = o.message
            msg.state, msg.state_at, msg.reason, msg.ack_text = o.state, now, row[2], row[3]
            self._bytes += row[5]
            if o.state == "quarantined":
                self._report_quarantined(msg)
            elif o.state == "expired":
                expired.setdefault(msg.lane, []).append(msg)
        for lane, msgs in expired.items():
            self._report_expired(lane, msgs)

    def _finish_rows(self, rows: list[tuple]) -> None:
        conn = self._conn
        self._set_sync("NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(FINISH_SQL, rows)
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _report_quarantined(self, msg: OutboxMessage) -> None:
        # The receiver's ACK text often echoes patient data ("patient 123 not found"): it is
        # kept in the database (`pumpgw outbox show`), never in logs or alerts.
        details = {
            "lane": msg.lane,
            "id": msg.id,
            "kind": msg.kind,
            "control_id": msg.control_id,
            "reason": msg.reason,
            "ack_text_chars": len(msg.ack_text),
        }
        log.error("outbox message quarantined %s", details)
        self._alert("message_quarantined", details)

    def _finish_and_claim(
        self, done: OutboxMessage | None, lane: str | None
    ) -> tuple[OutboxMessage | None, list[OutboxMessage]]:
        """One single-statement commit per delivered message (the hot path); the lane's
        rows are claimed (marked in_flight) CLAIM_BATCH at a time and served from memory.
        Claimed rows are never thinned and return to pending on restart."""
        conn = self._conn
        self._set_sync("NORMAL")
        now = time.time()
        # One transaction for the finish and a batch claim (or expiries) when the lane's
        # claimed rows ran out; otherwise the finish alone is one single-row commit (a
        # delivered message must not be resent after a crash: design.md §2 inv. 2).
        batched = lane is not None and not self._claimed.get(lane)
        if batched:
            conn.execute("BEGIN IMMEDIATE")
        try:
            if done is not None:
                conn.execute(
                    FINISH_SQL,
                    (
                        done.state,
                        now,
                        done.reason,
                        done.ack_text,
                        done.attempts,
                        _text_bytes(done.reason, done.ack_text),
                        done.id,
                    ),
                )
            result = self._next(lane, now)
            if batched:
                conn.execute("COMMIT")
        except BaseException:
            if batched:
                self._claimed.pop(lane, None)  # type: ignore[arg-type]  # rolled back: claim again
                self._rollback()
            raise
        return result

    def _next(self, lane: str | None, now: float) -> tuple[OutboxMessage | None, list[OutboxMessage]]:
        expired: list[OutboxMessage] = []
        while lane is not None:
            queue = self._claimed.get(lane)
            if not queue:
                queue = self._claim_batch(lane)
                if not queue:
                    return None, expired
            msg = queue.popleft()
            if msg.expires_at <= now:
                msg.state, msg.reason = "expired", _ttl_reason(msg)
                self._conn.execute(EXPIRE_SQL, (now, msg.reason, msg.id))
                expired.append(msg)
                continue
            return msg, expired
        return None, expired

    def _claim_batch(self, lane: str) -> deque[OutboxMessage]:
        conn = self._conn
        rows = conn.execute(CLAIM_SQL, (lane, CLAIM_BATCH)).fetchall()
        queue: deque[OutboxMessage] = deque(_claimed_message(lane, r) for r in rows)
        if queue:
            # exactly the rows read above: a row requeued meanwhile by the CLI stays pending
            ids = [m.id for m in queue]
            conn.execute(MARK_IN_FLIGHT_SQL.format(",".join("?" * len(ids))), (time.time(), *ids))
            self._claimed[lane] = queue
        return queue

    def _report_expired(self, lane: str, expired: list[OutboxMessage]) -> None:
        if not expired:
            return
        details = {
            "lane": lane,
            "count": len(expired),
            "kinds": sorted({m.kind for m in expired}),
            "ids": [m.id for m in expired[:20]],
        }
        log.warning("outbox message(s) expired before delivery (kept as expired) %s", details)
        self._alert("messages_expired", details)

    # -- maintenance and figures ----------------------------------------------------------

    async def compact(self) -> int:
        """Delete delivered rows older than the retention; returns rows deleted.

        In slices of :data:`COMPACT_SLICE` rows, one short transaction each, yielding to the
        loop between them: a day of deliveries never stalls polling or alarms."""
        cutoff = time.time() - self.delivered_retention_s
        total = 0
        while True:
            n = await self._run(self._write, self._compact_slice, cutoff)
            total += n
            if n < COMPACT_SLICE:
                break
            await asyncio.sleep(0)
        if total and not self._closed:
            try:  # give the WAL back too (checkpoint policy, gateway.outbox.budget)
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
        return total

    def _compact_slice(self, cutoff: float) -> int:
        self._set_sync("NORMAL")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = conn.execute(COMPACT_SLICE_SQL, (cutoff, COMPACT_SLICE)).rowcount
            self._bytes = queries.total_bytes(conn)  # totals table; also sees the operator CLI's changes
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return n

    async def maintain(self, *, interval_s: float = 60.0) -> None:
        """Compact periodically (first right after start-up: opening does not compact) and,
        while the disk is full, look for room every few seconds; runs until cancelled (the
        supervisor owns this task)."""
        last = time.monotonic() - interval_s
        while True:
            await asyncio.sleep(min(interval_s, RECOVERY_CHECK_S))
            if self.disk_full and not self._closed:
                self._check_recovered()
            if time.monotonic() - last < interval_s:
                continue
            last = time.monotonic()
            if not self._closed:
                self._end_thinning_episode()
            try:
                n = await self.compact()
            except OutboxFull:
                continue  # counted; the next round tries again
            if n:
                log.info("outbox compacted %d delivered row(s)", n)

    async def check_integrity(self) -> list[str]:
        """``PRAGMA quick_check`` on a worker thread with its own read-only connection (the
        loop keeps running; the check reads every page, minutes for a large cold file). Run
        once after READY (the daemon) instead of before it; a problem is an ERROR and an
        alert -- the outbox keeps working, the operator decides (docs/operations.md)."""
        started = time.monotonic()
        problems = await asyncio.to_thread(schema.integrity_check, self.path)
        took = round(time.monotonic() - started, 1)
        if problems:
            details = {"path": str(self.path), "problems": problems[:5], "seconds": took}
            log.error("outbox integrity check found problems %s", details)
            self._alert("outbox_corrupt", details)
        else:
            log.info("outbox integrity check ok (%.1f s)", took)
        return problems

    def stats(self) -> dict[str, LaneStats]:
        """Per lane figures (a read on its own connection; safe from the event loop)."""
        return queries.lane_stats(self._reader)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def _run(self, fn, *args):
        if self._closed:
            raise OutboxClosed(f"outbox {self.path} is closed")
        return fn(*args)  # synchronous on the loop thread (see the module docstring)

    def _set_sync(self, level: str) -> None:
        if self._sync != level:
            schema.set_synchronous(self._conn, level)
            self._sync = level


def _claimed_message(lane: str, r: tuple) -> OutboxMessage:
    """A row read by CLAIM_SQL, as the message now in flight."""
    return OutboxMessage(
        id=r[0],
        lane=lane,
        kind=r[1],
        control_id=r[2],
        payload=bytes(r[3]),
        priority=r[4],
        created_at=r[5],
        expires_at=r[6],
        attempts=r[7],
        state="in_flight",
        ttl_s=r[8],
    )


def _ttl_reason(msg: OutboxMessage) -> str:
    return f"TTL of {msg.ttl_s:g} s passed before sending"


def _text_bytes(*texts: str) -> int:
    """Bytes a row's stored texts add to its ``size`` (what the byte budget counts)."""
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
