"""The senders' side of the outbox: claiming a lane's oldest messages and recording what
became of them (one sender per lane; design.md §2 inv. 2-4).

Claims: a lane's rows are claimed (marked in_flight) CLAIM_BATCH at a time and served from
memory (:meth:`Delivery.claim`), or a window at a time (:meth:`Delivery.claim_many`). Claimed
rows are never thinned and return to pending on restart. Messages whose TTL passed are marked
expired on the way.

Deliveries: a delivered message must not be resent after a crash (only the one in flight may
be), so each delivery is committed before the next message goes out. Updating the message row
in that commit wrote five or six pages (the row, both indexes twice, the totals row): ~140 us a
message, more than a bare MLLP round trip. Instead the delivery is appended to the small
``delivery_log`` table -- one page, ~30 us -- and the logged deliveries are applied to their
rows in the next batch transaction (the next claim batch, a reset, a stop, or every
LOG_LIMIT deliveries), where the pages are written once for the whole batch. A crash between
the two loses nothing: opening the file applies the log before it returns in-flight rows to
pending, and figures (:func:`gateway.outbox.queries.lane_stats`) count logged rows as
delivered. Quarantines and expiries (rare) update the row directly.

Every statement touches only the rows it changes, through an index that fits: the claim reads
the lane's head through (lane, state, id); updates find their rows by rowid. NOT INDEXED keeps
the planner off the (state, state_at) index, through which "state='pending' AND id IN (...)"
walked every pending row (13.8 ms a batch at 100k pending, ~200 ms at 1M).
tests/gateway/outbox/test_query_plans.py pins these plans.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

from gateway.outbox.model import OutboxMessage, Outcome
from gateway.outbox.reporting import Reporter
from gateway.outbox.writer import Writer
from gateway.peertext import bound_text

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
LOG_SQL = "INSERT OR REPLACE INTO delivery_log (id, state_at, ack_text, attempts, extra) VALUES (?,?,?,?,?)"
READ_LOG_SQL = "SELECT 'delivered', state_at, '', ack_text, attempts, extra, id FROM delivery_log"
CLEAR_LOG_SQL = "DELETE FROM delivery_log"
RETURN_SQL = "UPDATE messages SET state='pending', state_at=? WHERE state='in_flight'"
RETURN_LANE_SQL = "UPDATE messages SET state='pending', state_at=? WHERE lane=? AND state='in_flight'"
T = TypeVar("T")
CLAIM_BATCH = 32  # rows marked in_flight per query; served from memory one at a time
LOG_LIMIT = 256  # logged deliveries applied at the latest after this many
STATES = ("delivered", "quarantined", "expired")


def recover(conn: sqlite3.Connection, now: float) -> int:
    """At open, in the caller's transaction: apply the deliveries logged before the last stop,
    then return the rows that were in flight to pending. Returns the rows returned."""
    rows = conn.execute(READ_LOG_SQL).fetchall()
    if rows:
        conn.executemany(FINISH_SQL, rows)
        conn.execute(CLEAR_LOG_SQL)
    return conn.execute(RETURN_SQL, (now,)).rowcount


class Delivery:
    """The sender-side state transitions of one outbox (owned by :class:`Outbox`)."""

    def __init__(self, writer: Writer, report: Reporter, add_bytes: Callable[[int], None]) -> None:
        self.w = writer
        self.report = report
        self.add_bytes = add_bytes  # stored ACK and reason text counts in the byte budget
        self.claimed: dict[str, deque[OutboxMessage]] = {}
        self.logged: list[tuple] = []  # FINISH_SQL rows of logged deliveries not yet applied

    # -- one message at a time ---------------------------------------------------------------

    def claim(self, lane: str) -> OutboxMessage | None:
        msg, expired = self.w.run("claim", self._finish_and_claim, None, lane)
        self.report.expired(lane, expired)
        return msg

    def finish(
        self, msg: OutboxMessage, state: str, reason: str, ack_text: str, claim_next: bool
    ) -> OutboxMessage | None:
        if state not in STATES:
            raise ValueError(f"finish() state must be delivered, quarantined or expired, got {state!r}")
        # Peer text is bounded (a hostile receiver's 15 MiB AE must not land on disk whole)
        # and counted in the byte budget with the payload (``size``, design.md §2 inv. 8).
        reason, ack_text = bound_text(reason), bound_text(ack_text)
        row = (state, time.time(), reason, ack_text, msg.attempts, _text_bytes(reason, ack_text), msg.id)
        lane = msg.lane if claim_next else None
        next_msg, expired = self.w.run("finish", self._finish_and_claim, row, lane)
        msg.state, msg.state_at, msg.reason, msg.ack_text = state, row[1], reason, ack_text  # type: ignore[assignment]
        self.add_bytes(row[5])
        if state == "quarantined":
            self.report.quarantined(msg)
        elif state == "expired":
            expired = [msg, *expired]
        self.report.expired(msg.lane, expired)
        return next_msg

    def _finish_and_claim(
        self, done: tuple | None, lane: str | None
    ) -> tuple[OutboxMessage | None, list[OutboxMessage]]:
        """The hot path: a delivery while the lane's claimed rows last is one single-row
        commit to the delivery log; when they run out, one transaction applies the log,
        records ``done`` and claims the next batch (or expires what is past its TTL)."""
        conn = self.w.conn
        self.w.set_sync("NORMAL")
        now = time.time()
        if lane is None or self.claimed.get(lane):
            if done is not None:
                if done[0] == "delivered":
                    self._log(done)
                else:
                    conn.execute(FINISH_SQL, done)
            if len(self.logged) >= LOG_LIMIT:
                self._in_transaction(None, lambda: None)
            return self._next(lane, now)
        return self._in_transaction(lane, lambda: self._next(lane, now), done)

    def _log(self, row: tuple) -> None:
        self.w.conn.execute(LOG_SQL, _log_row(row))
        self.logged.append(row)

    def _in_transaction(self, lane: str | None, work: Callable[[], T], *finished: tuple | None) -> T:
        """BEGIN, apply the logged deliveries and ``finished`` rows, ``work()``, COMMIT. On a
        rollback the batch ``work`` claimed into memory for ``lane`` is dropped (pending again)."""
        conn = self.w.conn
        rows = [*self.logged, *(r for r in finished if r is not None)]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany(FINISH_SQL, rows)
            if self.logged:
                conn.execute(CLEAR_LOG_SQL)
            result = work()
            conn.execute("COMMIT")
        except BaseException:
            if lane is not None:
                self.claimed.pop(lane, None)
            self.w.rollback()
            raise
        self.logged.clear()
        return result

    def _next(self, lane: str | None, now: float) -> tuple[OutboxMessage | None, list[OutboxMessage]]:
        expired: list[OutboxMessage] = []
        while lane is not None:
            queue = self.claimed.get(lane)
            if not queue:
                queue = self._claim_batch(lane, CLAIM_BATCH)
                if not queue:
                    return None, expired
                self.claimed[lane] = queue
            msg = queue.popleft()
            if msg.expires_at <= now:
                msg.state, msg.reason = "expired", _ttl_reason(msg)
                self.w.conn.execute(EXPIRE_SQL, (now, msg.reason, msg.id))
                expired.append(msg)
                continue
            return msg, expired
        return None, expired

    def _claim_batch(self, lane: str, limit: int) -> deque[OutboxMessage]:
        """Read the lane's head and mark exactly those rows in flight (a row requeued
        meanwhile by the CLI stays pending)."""
        conn = self.w.conn
        rows = conn.execute(CLAIM_SQL, (lane, limit)).fetchall()
        queue = deque(_claimed_message(lane, r) for r in rows)
        if queue:
            ids = [m.id for m in queue]
            conn.execute(MARK_IN_FLIGHT_SQL.format(",".join("?" * len(ids))), (time.time(), *ids))
        return queue

    # -- a window at a time ------------------------------------------------------------------

    def claim_many(self, lane: str, limit: int) -> list[OutboxMessage]:
        if limit < 1:
            raise ValueError(f"claim_many() limit must be >= 1, got {limit!r}")
        self.w.set_sync("NORMAL")
        msgs, expired, taken = self.w.run("claim", self._in_transaction, None, lambda: self._claim_window(lane, limit))
        held = self.claimed.get(lane)
        for _ in range(taken):  # rows claim() held in memory: served only once committed
            held.popleft()  # type: ignore[union-attr]
        for msg in expired:
            msg.state, msg.reason = "expired", _ttl_reason(msg)
        self.report.expired(lane, expired)
        return msgs

    def _claim_window(self, lane: str, limit: int) -> tuple[list[OutboxMessage], list[OutboxMessage], int]:
        now = time.time()
        held = self.claimed.get(lane) or deque()  # claimed earlier by claim(): the oldest
        out: list[OutboxMessage] = []
        expired: list[OutboxMessage] = []
        taken = 0
        for msg in held:
            if len(out) >= limit:
                break
            taken += 1
            (expired if msg.expires_at <= now else out).append(msg)
        while len(out) < limit and taken == len(held):
            want = limit - len(out)
            batch = self._claim_batch(lane, want)
            for msg in batch:
                (expired if msg.expires_at <= now else out).append(msg)
            if len(batch) < want:
                break
        if expired:
            self.w.conn.executemany(EXPIRE_SQL, [(now, _ttl_reason(m), m.id) for m in expired])
        return out, expired, taken

    def finish_many(self, outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            if o.state not in STATES:
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
        self.w.set_sync("NORMAL")
        self.w.run("finish", self._record, rows)
        expired: dict[str, list[OutboxMessage]] = {}
        for o, row in zip(outcomes, rows):
            msg = o.message
            msg.state, msg.state_at, msg.reason, msg.ack_text = o.state, now, row[2], row[3]
            self.add_bytes(row[5])
            if o.state == "quarantined":
                self.report.quarantined(msg)
            elif o.state == "expired":
                expired.setdefault(msg.lane, []).append(msg)
        for lane, msgs in expired.items():
            self.report.expired(lane, msgs)

    def _record(self, rows: list[tuple]) -> None:
        """Deliveries alone go to the log (one small commit); a window with a quarantine or
        an expiry, or a full log, is one transaction on the rows themselves."""
        if any(r[0] != "delivered" for r in rows) or len(self.logged) + len(rows) > LOG_LIMIT:
            self._in_transaction(None, lambda: None, *rows)
            return
        conn = self.w.conn
        if len(rows) == 1:
            conn.execute(LOG_SQL, _log_row(rows[0]))
        else:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(LOG_SQL, [_log_row(r) for r in rows])
                conn.execute("COMMIT")
            except BaseException:
                self.w.rollback()
                raise
        self.logged.extend(rows)

    # -- returning rows to pending --------------------------------------------------------

    def reset_lane(self, lane: str) -> int:
        """Return the lane's in-flight rows to pending (a sender starting on the lane),
        after applying the logged deliveries (those must never be sent again)."""
        self.w.set_sync("NORMAL")
        self.claimed.pop(lane, None)
        return self.w.run(
            "reset lane",
            self._in_transaction,
            None,
            lambda: self.w.conn.execute(RETURN_LANE_SQL, (time.time(), lane)).rowcount,
        )

    def release_all(self) -> int:
        """At a clean stop: apply the log and return every in-flight row, durably."""
        self.w.set_sync("FULL")
        back = self.w.run(
            "release in-flight",
            self._in_transaction,
            None,
            lambda: self.w.conn.execute(RETURN_SQL, (time.time(),)).rowcount,
        )
        self.claimed.clear()
        return back

    def apply_log(self) -> None:
        """Apply the logged deliveries now (compaction and figures want the rows exact)."""
        if self.logged:
            self.w.set_sync("NORMAL")
            self.w.run("apply deliveries", self._in_transaction, None, lambda: None)


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


def _log_row(row: tuple) -> tuple:
    """The LOG_SQL row of a FINISH_SQL row (state, state_at, reason, ack_text, attempts, extra, id)."""
    return (row[6], row[1], row[3], row[4], row[5])


def _ttl_reason(msg: OutboxMessage) -> str:
    return f"TTL of {msg.ttl_s:g} s passed before sending"


def _text_bytes(*texts: str) -> int:
    """Bytes a row's stored texts add to its ``size`` (what the byte budget counts)."""
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
