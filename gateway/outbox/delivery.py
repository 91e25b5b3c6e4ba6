"""The senders' side of the outbox: claiming a lane's oldest messages and recording what
became of them (one sender per lane; design.md §2 inv. 2-4).

Claims: a lane's oldest pending rows are claimed CLAIM_BATCH at a time and served from memory
(:meth:`Delivery.claim`), or a window at a time (:meth:`Delivery.claim_many`). A claimed row
is in flight *in memory only* (:attr:`Delivery.in_flight`): its row stays pending in the file
until its outcome is recorded. Marking it in the file cost a row write with both indexes and
the totals trigger (15 us a row on a slow machine, a third of a message's writes) and bought
nothing a restart needs: after a crash the rows in flight are exactly the ones to send again,
which pending rows are. This process's claims skip the rows it holds, its figures count them
as in flight (:meth:`Delivery.adjust`), and the byte budget never thins them; another process
(``pumpgw outbox stats``) sees them as pending. Messages whose TTL passed are marked expired
on the way.

Deliveries: a delivered message must not be resent after a crash (only the one in flight may
be), so each delivery is on record before the next message goes out. Updating the message row
in its own commit wrote five or six pages (the row, both indexes twice, the totals row): ~140 us
a message, more than a bare MLLP round trip. Instead the delivery is appended to the delivery
journal (:mod:`gateway.outbox.journal`, one ``write(2)``, a few us) and the journalled
deliveries are applied to their rows in the next batch transaction (the next claim, a reset,
a stop, or every LOG_LIMIT deliveries), where the pages are written once for the whole batch.
A crash between the two loses nothing: opening the file applies the journal before it returns
in-flight rows to pending, and this process's figures (:meth:`Delivery.adjust`) count
journalled rows as delivered. Quarantines and expiries (rare) update the row directly.
The statements and their plans: :mod:`gateway.outbox.statements`.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from gateway.outbox import journal
from gateway.outbox.model import LaneStats, OutboxMessage, Outcome
from gateway.outbox.reporting import Reporter
from gateway.outbox.statements import (
    CLAIM_SKIPPING_SQL,
    CLAIM_SQL,
    EXPIRE_SQL,
    FINISH_ROWS_MAX,
    FINISH_SQL,
    RECOVER_SQL,
    RETURN_SQL,
    finish_rows_sql,
    held_param,
)
from gateway.outbox.writer import Writer
from gateway.peertext import bound_text

T = TypeVar("T")
NO_LIMIT = 1 << 62
CLAIM_BATCH = 32  # rows claimed per query by claim(); served from memory one at a time
LOG_LIMIT = 256  # journalled deliveries applied at the latest after this many
STATES = ("delivered", "quarantined", "expired")


def recover(conn: sqlite3.Connection, path: Path, now: float) -> int:
    """At open, in the caller's transaction: apply the deliveries journalled before the last
    stop, then return rows a pumpgw before issue 20 marked in flight to pending. Returns the
    rows returned. The journal is emptied by the :class:`Delivery` of the opened outbox, once
    this is committed."""
    rows = journal.read(path)
    if rows:
        conn.executemany(RECOVER_SQL, rows)
    return conn.execute(RETURN_SQL, (now,)).rowcount


class Delivery:
    """The sender-side state transitions of one outbox (owned by :class:`Outbox`)."""

    def __init__(self, writer: Writer, report: Reporter, add_bytes: Callable[[int], None]) -> None:
        self.w = writer
        self.report = report
        self.add_bytes = add_bytes  # stored ACK and reason text counts in the byte budget
        self.claimed: dict[str, deque[OutboxMessage]] = {}  # claim()'s batch, not handed out yet
        # every claimed message whose outcome is not recorded yet, per lane and id
        self.in_flight: dict[str, dict[int, OutboxMessage]] = {}
        self._claiming: list[OutboxMessage] = []  # claimed in the open transaction
        self.logged: list[tuple[OutboxMessage, tuple]] = []  # (message, FINISH_SQL row) not yet applied
        # ids in ``logged``: still in flight until applied, as their rows still say pending (a
        # claim or the byte budget must not take them for pending ones)
        self._logged_ids: set[int] = set()
        self.journal = journal.DeliveryJournal(writer.path)
        self.journal.clear()  # what it held was applied by recover() at open

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
        row = _finish_row(msg, state, time.time(), reason, ack_text)
        lane = msg.lane if claim_next else None
        next_msg, expired = self.w.run("finish", self._finish_and_claim, (msg, row), lane)
        self._recorded(msg, row)
        if state == "quarantined":
            self.report.quarantined(msg)
        elif state == "expired":
            expired = [msg, *expired]
        self.report.expired(msg.lane, expired)
        return next_msg

    def _finish_and_claim(
        self, done: tuple[OutboxMessage, tuple] | None, lane: str | None
    ) -> tuple[OutboxMessage | None, list[OutboxMessage]]:
        """The hot path: a delivery while the lane's claimed rows last is one line in the
        journal; when they run out, one transaction applies the journal, records ``done``
        (message, FINISH row) and claims the next batch (or expires what is past its TTL)."""
        conn = self.w.conn
        self.w.set_sync("NORMAL")
        now = time.time()
        if lane is None or self.claimed.get(lane):
            if done is not None:
                if done[1][0] == "delivered":
                    self._journal([done])
                else:
                    conn.execute(FINISH_SQL, done[1])
            if len(self.logged) >= LOG_LIMIT:
                self._in_transaction(None, lambda: None)
            return self._next(lane, now)
        return self._in_transaction(lane, lambda: self._next(lane, now), *([done[1]] if done else []))

    def _journal(self, done: list[tuple[OutboxMessage, tuple]]) -> None:
        self.journal.append([(msg.control_id, row) for msg, row in done])
        self._logged(done)

    def _logged(self, done: list[tuple[OutboxMessage, tuple]]) -> None:
        self.logged.extend(done)
        self._logged_ids.update(msg.id for msg, _ in done)

    def _in_transaction(self, lane: str | None, work: Callable[[], T], *finished: tuple) -> T:
        """BEGIN, apply the journalled deliveries and ``finished`` rows, ``work()``, COMMIT,
        empty the journal. On a rollback the batch ``work`` claimed into memory for ``lane``
        is dropped (pending again)."""
        conn = self.w.conn
        rows = [*(r for _, r in self.logged), *finished]
        self._claiming = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                _apply(conn, rows)
            result = work()
            conn.execute("COMMIT")
        except BaseException:
            if lane is not None:
                self.claimed.pop(lane, None)
            for msg in self._claiming:  # not claimed after all: pending again, for the next claim
                self.in_flight[msg.lane].pop(msg.id, None)
            self._claiming = []
            self.w.rollback()
            raise
        self._claiming = []
        if self.logged:
            for msg, _ in self.logged:  # on their rows now: no longer in flight
                self._settled(msg)
            self.logged.clear()
            self._logged_ids.clear()
            self.journal.clear()
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
                self._settled(msg)
                expired.append(msg)
                continue
            return msg, expired
        return None, expired

    def _claim_batch(self, lane: str, limit: int) -> deque[OutboxMessage]:
        """Read the lane's oldest pending rows that are not in flight already (a row requeued
        by the operator CLI is among them at once, in id order); they are in flight now."""
        conn = self.w.conn
        below = self.w.unsynced_from or NO_LIMIT  # rows whose commit is not yet fsynced wait
        held = self.in_flight.setdefault(lane, {})
        if held:
            rows = conn.execute(CLAIM_SKIPPING_SQL, (lane, below, held_param(held), limit)).fetchall()
        else:
            rows = conn.execute(CLAIM_SQL, (lane, below, limit)).fetchall()
        queue = deque(_claimed_message(lane, r) for r in rows)
        for msg in queue:
            held[msg.id] = msg
        self._claiming.extend(queue)
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
        for msg in expired:  # settled once committed (claim()'s batch keeps them otherwise)
            msg.state, msg.reason = "expired", _ttl_reason(msg)
            self._settled(msg)
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
        rows = [_finish_row(o.message, o.state, now, o.reason, o.ack_text) for o in outcomes]
        self.w.set_sync("NORMAL")
        self.w.run("finish", self._record, [(o.message, r) for o, r in zip(outcomes, rows)])
        expired: dict[str, list[OutboxMessage]] = {}
        for o, row in zip(outcomes, rows):
            msg = o.message
            self._recorded(msg, row)
            if o.state == "quarantined":
                self.report.quarantined(msg)
            elif o.state == "expired":
                expired.setdefault(msg.lane, []).append(msg)
        for lane, msgs in expired.items():
            self.report.expired(lane, msgs)

    def delivered(self, msg: OutboxMessage, ack_text: str) -> None:
        """One accepted message, the sender's common case: a line in the delivery journal,
        as :meth:`finish_many` writes for a window of deliveries, without its generality (the
        MLLP sender's CPU per message went from 132 to 118 us, bench/backlog_bench.py). The
        line is written directly; a write that fails takes the writer's way (disk full,
        degraded mode, OutboxBusy), which writes it again or raises."""
        if len(self.logged) >= LOG_LIMIT:
            self.finish_many([Outcome(msg, "delivered", ack_text=ack_text)])
            return
        row = _finish_row(msg, "delivered", time.time(), "", ack_text)
        try:
            self.journal.append([(msg.control_id, row)])
        except OSError:
            self.w.run("finish", self._journal, [(msg, row)])
        else:
            self._logged([(msg, row)])
        self._recorded(msg, row)

    def _recorded(self, msg: OutboxMessage, row: tuple) -> None:
        """The message as its FINISH row left it; its stored texts count in the byte budget.
        Applied to its row, it is no longer in flight; journalled, it is once the line is
        applied (:meth:`_in_transaction`)."""
        msg.state, msg.state_at, msg.reason, msg.ack_text = row[0], row[1], row[2], row[3]
        self.add_bytes(row[5])
        if msg.id not in self._logged_ids:
            self._settled(msg)

    def _settled(self, msg: OutboxMessage) -> None:
        """``msg`` has its outcome on record: no longer in flight."""
        held = self.in_flight.get(msg.lane)
        if held is not None:
            held.pop(msg.id, None)

    def held_ids(self) -> set[int]:
        """Ids of every message in flight, journalled deliveries included (the byte budget
        never thins them)."""
        return {i for held in self.in_flight.values() for i in held}

    def _record(self, done: list[tuple[OutboxMessage, tuple]]) -> None:
        """Deliveries alone go to the journal; a window with a quarantine or an expiry, or a
        full journal, is one transaction on the rows themselves."""
        if any(r[0] != "delivered" for _, r in done) or len(self.logged) + len(done) > LOG_LIMIT:
            self._in_transaction(None, lambda: None, *(r for _, r in done))
        else:
            self._journal(done)

    # -- returning rows to pending --------------------------------------------------------

    def reset_lane(self, lane: str) -> int:
        """Return the lane's in-flight messages to pending (a sender starting on the lane: the
        next claim takes them again, in order), after applying the logged deliveries (those
        must never be sent again). Returns how many were in flight."""
        self.w.set_sync("NORMAL")
        self.w.run("reset lane", self._in_transaction, None, lambda: None)
        self.claimed.pop(lane, None)
        return len(self.in_flight.pop(lane, {}))

    def release_all(self) -> int:
        """At a clean stop: apply the log durably; every message in flight is pending again."""
        self.w.set_sync("FULL")
        self.w.run("release in-flight", self._in_transaction, None, lambda: None)
        back = sum(len(held) for held in self.in_flight.values())
        self.in_flight.clear()
        self.claimed.clear()
        return back

    def adjust(self, stats: dict[str, LaneStats]) -> dict[str, LaneStats]:
        """This process's figures from the file's: the journalled deliveries (their rows still
        say pending) count as delivered, the messages in flight (pending in the file) as in flight."""
        for lane, held in self.in_flight.items():  # journalled deliveries among them
            if held:
                lane_stats = stats.setdefault(lane, LaneStats())
                lane_stats.pending -= len(held)
                lane_stats.in_flight += len(held)
        for msg, row in self.logged:
            lane_stats = stats.setdefault(msg.lane, LaneStats())
            lane_stats.in_flight -= 1
            lane_stats.delivered += 1
            lane_stats.bytes += row[5]
        return stats

    def close(self) -> None:
        self.journal.close()

    def apply_log(self) -> None:
        """Apply the journalled deliveries now (compaction wants the rows exact)."""
        if self.logged:
            self.w.set_sync("NORMAL")
            self.w.run("apply deliveries", self._in_transaction, None, lambda: None)


def _apply(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    """Apply FINISH rows, FINISH_ROWS_MAX to a statement. A message finished twice in one
    batch keeps its last row (a VALUES table matching a row twice would leave the choice to
    SQLite)."""
    unique = list({r[6]: r for r in rows}.values()) if len(rows) > 1 else rows
    for start in range(0, len(unique), FINISH_ROWS_MAX):
        chunk = unique[start : start + FINISH_ROWS_MAX]
        conn.execute(finish_rows_sql(len(chunk)), [p for r in chunk for p in r])


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


def _finish_row(msg: OutboxMessage, state: str, now: float, reason: str, ack_text: str) -> tuple:
    """FINISH_SQL's parameters for ``msg``. Peer text is bounded (a hostile receiver's 15 MiB
    AE must not land on disk whole) and counted in the byte budget with the payload (``size``,
    design.md §2 inv. 8)."""
    reason, ack_text = bound_text(reason), bound_text(ack_text)
    return (state, now, reason, ack_text, msg.attempts, _text_bytes(reason, ack_text), msg.id)


def _text_bytes(*texts: str) -> int:
    """Bytes a row's stored texts add to its ``size`` (what the byte budget counts)."""
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
