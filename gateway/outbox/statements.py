"""The senders' statements (gateway.outbox.delivery).

Every statement touches only the rows it changes, through an index that fits: the claim reads
the lane's head through (lane, state, id); updates find their rows by rowid. NOT INDEXED keeps
the planner off the (state, state_at) index, through which "state='pending' AND id IN (...)"
walked every pending row (13.8 ms a batch at 100k pending, ~200 ms at 1M).
tests/gateway/outbox/test_query_plans.py pins these plans.
"""

import functools
import json
from collections.abc import Iterable

CLAIM_SQL = (
    "SELECT id, kind, control_id, payload, priority, created_at, expires_at, attempts, ttl_s "
    "FROM messages WHERE lane = ? AND state = 'pending' AND id < ? ORDER BY id LIMIT ?"
)
# rows this process holds in flight (pending in the file), skipped: its parameter is held_param()
NOT_HELD = "id NOT IN (SELECT value FROM json_each(?))"


def held_param(ids: Iterable[int]) -> str:
    """NOT_HELD's parameter: the ids as a JSON array."""
    return json.dumps(list(ids))


# CLAIM_SQL skipping the rows in flight
CLAIM_SKIPPING_SQL = CLAIM_SQL.replace(" ORDER BY", f" AND {NOT_HELD} ORDER BY")
# size: the stored reason and ACK text count in the byte budget (bounded, gateway.textlimits)
FINISH_SQL = (
    "UPDATE messages NOT INDEXED SET state=?, state_at=?, reason=?, ack_text=?, attempts=?, "
    "size=length(payload) + ? WHERE id=?"
)
FINISH_ROWS_MAX = 128  # FINISH rows per grouped statement (one claim window; 896 parameters)


@functools.lru_cache(maxsize=8)
def finish_rows_sql(n: int) -> str:
    """FINISH_SQL for ``n`` rows in one statement: the rows' parameters, flattened in FINISH_SQL's
    order, form a VALUES table joined to the messages by rowid. One statement instead of ``n``
    executions: applying a window of journalled deliveries went from 28 to 15 us a row
    (bench/sections_bench.py's drain); each row keeps its own values (state_at, attempts, texts)."""
    values = ",".join(["(?,?,?,?,?,?,?)"] * n)
    return (
        "UPDATE messages NOT INDEXED SET state=v.column1, state_at=v.column2, reason=v.column3, "
        "ack_text=v.column4, attempts=v.column5, size=length(payload) + v.column6 "
        f"FROM (VALUES {values}) AS v WHERE messages.id = v.column7"
    )


EXPIRE_SQL = "UPDATE messages NOT INDEXED SET state='expired', state_at=?, reason=? WHERE id=?"
# a journalled delivery applied at open: the control id must match too (gateway.outbox.journal)
RECOVER_SQL = (
    "UPDATE messages NOT INDEXED SET state='delivered', state_at=?, reason='', ack_text=?, attempts=?, "
    "size=length(payload) + ? WHERE id=? AND control_id=? AND state IN ('in_flight', 'pending')"
)
# at open: rows a pumpgw before issue 20 marked in flight (claims are in memory only since)
RETURN_SQL = "UPDATE messages SET state='pending', state_at=? WHERE state='in_flight'"

__all__ = [
    "CLAIM_SKIPPING_SQL",
    "CLAIM_SQL",
    "EXPIRE_SQL",
    "FINISH_ROWS_MAX",
    "FINISH_SQL",
    "NOT_HELD",
    "RECOVER_SQL",
    "RETURN_SQL",
    "finish_rows_sql",
    "held_param",
]
