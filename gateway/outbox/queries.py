"""SQL shared by the live :class:`Outbox` and the operator CLI (a second process).

Plain functions over a connection; the caller picks the thread and the durability level.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Mapping

from gateway.outbox.errors import MessageNotFound
from gateway.outbox.model import STATES, LaneStats, OutboxMessage
from gateway.outbox.statements import NOT_HELD, held_param

_COLUMNS = (
    "id, lane, kind, control_id, payload, priority, created_at, expires_at, attempts, "
    "state, reason, ack_text, state_at, ttl_s"
)


def row_to_message(row: tuple) -> OutboxMessage:
    """A row of ``SELECT {_COLUMNS}`` as a message (the columns in the dataclass's order)."""
    return OutboxMessage(
        id=row[0],
        lane=row[1],
        kind=row[2],
        control_id=row[3],
        payload=bytes(row[4]),
        priority=row[5],
        created_at=row[6],
        expires_at=row[7],
        attempts=row[8],
        state=row[9],
        reason=row[10],
        ack_text=row[11],
        state_at=row[12],
        ttl_s=row[13],
    )


def lane_stats(
    conn: sqlite3.Connection, now: float | None = None, in_flight: Mapping[str, Collection[int]] | None = None
) -> dict[str, LaneStats]:
    """Per lane figures from the totals table (schema step 9) plus one index probe per lane
    for the oldest pending message: cost independent of the backlog. ``in_flight``: the ids
    the daemon holds per lane (pending in the file), which the probe skips."""
    now = time.time() if now is None else now
    in_flight = in_flight or {}
    out: dict[str, LaneStats] = {}
    for lane, state, count, size in conn.execute(
        "SELECT lane, state, count, bytes FROM message_totals WHERE count != 0 ORDER BY lane, state"
    ):
        stats = out.setdefault(lane, LaneStats())
        setattr(stats, state, count)
        stats.bytes += size
        if state == "pending":
            # the lane's lowest pending id is its oldest (ids follow creation; requeued rows
            # keep their id and their created_at), found through (lane, state, id)
            oldest = conn.execute(
                f"SELECT created_at FROM messages WHERE lane = ? AND state = 'pending' AND {NOT_HELD} "
                "ORDER BY id LIMIT 1",
                (lane, held_param(in_flight.get(lane, ()))),
            ).fetchone()
            if oldest is not None:
                stats.oldest_pending_age_s = max(0.0, now - oldest[0])
    for lane, thinned in conn.execute("SELECT lane, thinned FROM lane_counters"):
        out.setdefault(lane, LaneStats()).thinned = thinned
    return out


def list_messages(
    conn: sqlite3.Connection, *, lane: str | None = None, state: str | None = None, limit: int = 100
) -> list[OutboxMessage]:
    where, args = [], []
    if lane is not None:
        where.append("lane = ?")
        args.append(lane)
    if state is not None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        where.append("state = ?")
        args.append(state)
    sql = f"SELECT {_COLUMNS} FROM messages"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id LIMIT ?"
    return [row_to_message(r) for r in conn.execute(sql, (*args, limit))]


def get_message(conn: sqlite3.Connection, msg_id: int) -> OutboxMessage:
    row = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (msg_id,)).fetchone()
    if row is None:
        raise MessageNotFound(msg_id)
    return row_to_message(row)


def requeue(conn: sqlite3.Connection, *, msg_id: int | None = None, all_quarantined: bool = False) -> int:
    """Put quarantined/expired rows back to pending with a fresh TTL; returns rows changed.

    The row keeps its id, so it is sent ahead of younger pending messages of its lane.
    """
    now = time.time()
    if all_quarantined:
        cur = conn.execute(
            "UPDATE messages SET state='pending', state_at=?, expires_at=?+ttl_s, "
            "reason='requeued by operator: ' || reason WHERE state='quarantined'",
            (now, now),
        )
        return cur.rowcount
    assert msg_id is not None
    msg = get_message(conn, msg_id)
    if msg.state not in ("quarantined", "expired"):
        return 0
    cur = conn.execute(
        "UPDATE messages SET state='pending', state_at=?, expires_at=?+ttl_s, "
        "reason='requeued by operator: ' || reason WHERE id=?",
        (now, now, msg_id),
    )
    return cur.rowcount


def purge_expired(conn: sqlite3.Connection, *, older_than_s: float) -> int:
    """Delete expired rows whose expiry was recorded more than ``older_than_s`` ago."""
    cur = conn.execute("DELETE FROM messages WHERE state='expired' AND state_at <= ?", (time.time() - older_than_s,))
    return cur.rowcount


def total_bytes(conn: sqlite3.Connection) -> int:
    """Payload bytes of every row (the totals table: a few rows, not a scan)."""
    return conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM message_totals").fetchone()[0]


def state_totals(conn: sqlite3.Connection, state: str) -> tuple[int, int]:
    """(rows, payload bytes) in ``state`` over every lane, from the totals table."""
    return conn.execute(
        "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(bytes), 0) FROM message_totals WHERE state = ?", (state,)
    ).fetchone()
