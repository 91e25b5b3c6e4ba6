"""The durable outbox: one SQLite file, one lane per destination name.

Threading: none. Every statement runs on the event loop's thread, synchronously. This is a
measured choice: running the statements on a worker thread halved the drain rate of a
lane (4.2k vs 9.4k msgs/s on loopback; each hop costs ~30 us plus GIL hand-overs), while
the longest blocking call is one ``fsync`` per loop turn at most (~0.15 ms on the target
disk class), which pump polling tolerates.

Group commit: ``enqueue`` appends to a batch; one owned flusher task, scheduled for the
next loop turn, commits the whole batch in one ``synchronous=FULL`` transaction, then
resolves every waiting ``enqueue``. No caller returns before its own commit.

State transitions made by a sender (claim, delivered, quarantined, expired) commit with
``synchronous=NORMAL``: in WAL mode such a commit survives a process crash (SIGKILL), and
becomes durable against power loss with the next FULL commit or checkpoint. Losing one on
power loss only makes the sender resend identical bytes (at-least-once holds); see
docs/integration-engineer.md, "Delivery guarantees".
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from gateway.outbox import budget, queries, schema
from gateway.outbox.errors import OutboxClosed
from gateway.outbox.model import LaneStats, OutboxMessage

log = logging.getLogger("pumpgw.outbox")

AlertHook = Callable[[str, dict], None]
PRIORITIES = frozenset({"normal", "high"})
_CLAIM_SQL = (
    "SELECT id, kind, control_id, payload, priority, created_at, expires_at, attempts, ttl_s "
    "FROM messages WHERE lane = ? AND state = 'pending' ORDER BY id LIMIT ?"
)
CLAIM_BATCH = 32  # rows marked in_flight per query; served from memory one at a time


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
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.delivered_retention_s = delivered_retention_s
        self.on_alert = on_alert
        self._conn = conn
        self._reader = reader
        self._sync = "FULL"
        self._batch: list[tuple[tuple, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._claimed: dict[str, deque[OutboxMessage]] = {}
        self._bytes = queries.total_bytes(conn)
        self._over_budget = False  # alert on crossing the budget, not on every commit
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        max_bytes: int = 1 << 30,
        delivered_retention_s: float = 86400.0,
        on_alert: AlertHook | None = None,
    ) -> Outbox:
        """Open or create the file, check and migrate it, and return in-flight rows to
        pending (they were on the wire when the previous process died)."""
        path = Path(path)
        conn = schema.connect(path)
        try:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            back = conn.execute(
                "UPDATE messages SET state='pending', state_at=? WHERE state='in_flight'", (now,)
            ).rowcount
            compacted = conn.execute(
                "DELETE FROM messages WHERE state='delivered' AND state_at <= ?", (now - delivered_retention_s,)
            ).rowcount
            conn.execute("COMMIT")
            reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10.0)
        except BaseException:
            conn.close()
            raise
        if back:
            log.warning("outbox %s: %d message(s) were in flight at the last stop; they will be resent", path, back)
        log.info("outbox %s opened (compacted %d delivered row(s))", path, compacted)
        return cls(
            path, conn, reader, max_bytes=max_bytes, delivered_retention_s=delivered_retention_s, on_alert=on_alert
        )

    def close(self) -> None:
        """Close the file. Enqueues still waiting for their commit fail with OutboxClosed."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
        for _, fut in self._batch:
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
        if self._closed:
            raise OutboxClosed(f"outbox {self.path} is closed")
        if not lane or not kind or not control_id:
            raise ValueError(f"lane, kind and control_id must be non-empty (got {lane!r}, {kind!r}, {control_id!r})")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {sorted(PRIORITIES)}, got {priority!r}")
        payload = bytes(payload)
        now = time.time()
        row = (lane, kind, priority, control_id, payload, len(payload), now, ttl_s, now + ttl_s, now)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._batch.append((row, fut))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="pumpgw-outbox-commit")
        return await fut

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the rest of this loop turn join the batch
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    ids, outcome = self._commit([r for r, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    raise
                for (_, fut), msg_id in zip(batch, ids):
                    if not fut.done():
                        fut.set_result(msg_id)
                for lane in {r[0] for r, _ in batch}:
                    self.waiter(lane).set()
                self._report_budget(outcome)
        finally:
            self._flusher = None

    def _commit(self, rows: list[tuple]) -> tuple[list[int], budget.BudgetOutcome]:
        conn = self._conn
        self._set_sync("FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [
                conn.execute(
                    "INSERT INTO messages (lane, kind, priority, control_id, payload, size, state, "
                    "created_at, ttl_s, expires_at, state_at) VALUES (?,?,?,?,?,?,'pending',?,?,?,?)",
                    row,
                ).lastrowid
                for row in rows
            ]
            total = self._bytes + sum(r[5] for r in rows)
            total, outcome = budget.enforce(conn, total=total, max_bytes=self.max_bytes)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # after e.g. SQLITE_FULL SQLite may have rolled back already
                conn.execute("ROLLBACK")
            raise
        self._bytes = total
        return ids, outcome

    def _report_budget(self, outcome: budget.BudgetOutcome) -> None:
        if outcome.thinned:
            details = {
                "thinned": dict(outcome.thinned),
                "thinned_bytes": outcome.thinned_bytes,
                "compacted_delivered": outcome.compacted,
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }
            log.warning("outbox byte budget reached: periodic observations thinned", extra=details)
            self._alert("outbox_budget_thinned", details)
        # Alert on the crossing only: an alert is itself committed (MQTT .../alerts), so alerting
        # on every commit while over budget would feed itself.
        if outcome.still_over and not self._over_budget:
            self._over_budget = True
            details = {"bytes": self._bytes, "max_bytes": self.max_bytes}
            log.error("outbox over its byte budget with nothing left to thin (events and alarms are kept)", extra=details)
            self._alert("outbox_budget_exceeded", details)
        elif not outcome.still_over and self._over_budget:
            self._over_budget = False
            log.info("outbox back under its byte budget", extra={"bytes": self._bytes, "max_bytes": self.max_bytes})

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
        return await self._run(self._reset_lane, lane)

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
        msg, expired = await self._run(self._finish_and_claim, None, lane)
        self._report_expired(lane, expired)
        return msg

    async def finish(
        self, msg: OutboxMessage, state: str, *, reason: str = "", ack_text: str = "", claim_next: bool = True
    ) -> OutboxMessage | None:
        """Record the outcome of ``msg`` (delivered, quarantined or expired) and return the
        lane's next message (claimed), unless ``claim_next`` is False."""
        if state not in ("delivered", "quarantined", "expired"):
            raise ValueError(f"finish() state must be delivered, quarantined or expired, got {state!r}")
        msg.state, msg.reason, msg.ack_text = state, reason, ack_text  # type: ignore[assignment]
        next_msg, expired = await self._run(self._finish_and_claim, msg, msg.lane if claim_next else None)
        if state == "quarantined":
            # The receiver's ACK text often echoes patient data ("patient 123 not found"): it is
            # kept in the database (`pumpgw outbox show`), never in logs or alerts.
            details = {"lane": msg.lane, "id": msg.id, "kind": msg.kind, "control_id": msg.control_id,
                       "reason": reason, "ack_text_chars": len(ack_text)}
            log.error("outbox message quarantined", extra=details)
            self._alert("message_quarantined", details)
        elif state == "expired":
            expired = [msg, *expired]
        self._report_expired(msg.lane, expired)
        return next_msg

    def _finish_and_claim(
        self, done: OutboxMessage | None, lane: str | None
    ) -> tuple[OutboxMessage | None, list[OutboxMessage]]:
        """One single-statement commit per delivered message (the hot path); the lane's
        rows are claimed (marked in_flight) CLAIM_BATCH at a time and served from memory.
        Claimed rows are never thinned and return to pending on restart."""
        conn = self._conn
        self._set_sync("NORMAL")
        now = time.time()
        if done is not None:
            conn.execute(
                "UPDATE messages SET state=?, state_at=?, reason=?, ack_text=?, attempts=? WHERE id=?",
                (done.state, now, done.reason, done.ack_text, done.attempts, done.id),
            )
        expired: list[OutboxMessage] = []
        while lane is not None:
            queue = self._claimed.get(lane)
            if not queue:
                queue = self._claim_batch(lane)
                if not queue:
                    return None, expired
            msg = queue.popleft()
            if msg.expires_at <= now:
                msg.state, msg.reason = "expired", f"TTL of {msg.ttl_s:g} s passed before sending"
                conn.execute(
                    "UPDATE messages SET state='expired', state_at=?, reason=? WHERE id=?", (now, msg.reason, msg.id)
                )
                expired.append(msg)
                continue
            return msg, expired
        return None, expired

    def _claim_batch(self, lane: str) -> deque[OutboxMessage]:
        conn = self._conn
        rows = conn.execute(_CLAIM_SQL, (lane, CLAIM_BATCH)).fetchall()
        queue: deque[OutboxMessage] = deque(
            OutboxMessage(
                id=r[0], lane=lane, kind=r[1], control_id=r[2], payload=bytes(r[3]), priority=r[4],
                created_at=r[5], expires_at=r[6], attempts=r[7], state="in_flight", ttl_s=r[8],
            )
            for r in rows
        )
        if queue:
            # exactly the rows read above: a row requeued meanwhile by the CLI stays pending
            ids = [m.id for m in queue]
            conn.execute(
                f"UPDATE messages SET state='in_flight', state_at=? WHERE state='pending' AND id IN "
                f"({','.join('?' * len(ids))})",
                (time.time(), *ids),
            )
            self._claimed[lane] = queue
        return queue

    def _report_expired(self, lane: str, expired: list[OutboxMessage]) -> None:
        if not expired:
            return
        details = {"lane": lane, "count": len(expired), "kinds": sorted({m.kind for m in expired}),
                   "ids": [m.id for m in expired[:20]]}
        log.warning("outbox message(s) expired before delivery (kept as expired)", extra=details)
        self._alert("messages_expired", details)

    # -- maintenance and figures ----------------------------------------------------------

    async def compact(self) -> int:
        """Delete delivered rows older than the retention; returns rows deleted."""
        return await self._run(self._compact)

    def _compact(self) -> int:
        self._set_sync("NORMAL")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = conn.execute(
                "DELETE FROM messages WHERE state='delivered' AND state_at <= ?",
                (time.time() - self.delivered_retention_s,),
            ).rowcount
            total = queries.total_bytes(conn)  # also picks up changes made by the operator CLI
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._bytes = total
        return n

    async def maintain(self, *, interval_s: float = 60.0) -> None:
        """Compact periodically; runs until cancelled (the supervisor owns this task)."""
        while True:
            await asyncio.sleep(interval_s)
            n = await self.compact()
            if n:
                log.info("outbox compacted %d delivered row(s)", n)

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
