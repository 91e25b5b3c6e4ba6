"""The sender's statements touch only the rows they change: their query plans are pinned
(``EXPLAIN QUERY PLAN`` text, not timings), on a file with a backlog so the planner has
statistics to be tempted by the (state, state_at) index."""

from __future__ import annotations

import json
import sqlite3

import pytest

from gateway.outbox import delivery, maintenance, schema

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def conn(tmp_path):
    conn = schema.connect(tmp_path / "o.db")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO messages (lane, kind, control_id, payload, size, state, created_at, ttl_s, expires_at, state_at) "
        "VALUES (?, 'pcd01', ?, x'00', 1, ?, 0, 1, 1, 0)",
        ((("doc" if i % 3 else "alarm"), f"C{i}", ("pending" if i % 5 else "delivered")) for i in range(5000)),
    )
    conn.execute("COMMIT")
    # no ANALYZE: the daemon's file has no statistics, so the planner guesses ~10 rows per
    # equality on an index column and the (state, state_at) index looks cheaper than 32
    # rowid lookups -- the plan that walked every pending row
    yield conn
    conn.close()


def plan(conn: sqlite3.Connection, sql: str, args: tuple) -> str:
    return "\n".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_the_claim_reads_the_lane_head_through_the_lane_state_id_index(conn):
    text = plan(conn, delivery.CLAIM_SQL, ("doc", delivery.NO_LIMIT, delivery.CLAIM_BATCH))
    # no sort, no scan; ids not yet fsynced (gateway.outbox.groupcommit) bound the range
    assert text == "SEARCH messages USING INDEX messages_lane_state (lane=? AND state=? AND id<?)"


def test_a_claim_skipping_the_rows_in_flight_still_reads_the_lane_head_through_the_index(conn):
    held = json.dumps(list(range(1, 2 * delivery.CLAIM_BATCH)))
    text = plan(conn, delivery.CLAIM_SKIPPING_SQL, ("doc", delivery.NO_LIMIT, held, delivery.CLAIM_BATCH))
    # the held ids become a list probed per row; the lane's head is still an index range, no sort
    assert text.splitlines()[0] == "SEARCH messages USING INDEX messages_lane_state (lane=? AND state=? AND id<?)"
    assert "SCAN messages" not in text and "TEMP B-TREE" not in text


@pytest.mark.parametrize(
    "sql, args",
    [
        (delivery.FINISH_SQL, ("delivered", 0.0, "", "AA", 1, 2, 7)),
        (delivery.EXPIRE_SQL, (0.0, "ttl", 7)),
        (delivery.RECOVER_SQL, (0.0, "AA", 1, 2, 7, "C7")),
    ],
)
def test_finishing_a_message_is_one_rowid_lookup(conn, sql, args):
    assert plan(conn, sql, args) == "SEARCH messages USING INTEGER PRIMARY KEY (rowid=?)"


def test_a_compaction_slice_finds_delivered_rows_through_the_state_index(conn):
    text = plan(conn, maintenance.COMPACT_SLICE_SQL, (0.0, maintenance.COMPACT_SLICE))
    assert "USING INTEGER PRIMARY KEY (rowid=?)" in text
    assert (
        "USING INDEX messages_state_at (state=? AND state_at<?)" in text
        or "USING COVERING INDEX messages_state_at (state=? AND state_at<?)" in text
    )
    assert "SCAN messages" not in text


def test_the_totals_that_start_up_and_stats_read_are_not_a_scan_of_messages(conn):
    from gateway.outbox import queries

    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    queries.total_bytes(conn)
    queries.lane_stats(conn)
    conn.set_trace_callback(None)
    for sql in seen:
        bound = sql.replace("'doc'", "?").replace("'alarm'", "?")  # the trace shows bound values
        text = plan(conn, bound, ("doc",) * bound.count("?"))
        assert "SCAN messages" not in text and "USE TEMP B-TREE" not in text, (sql, text)
    assert sum("FROM messages" in sql for sql in seen) == 2  # one probe per lane with pending rows


def test_a_window_of_finished_messages_is_one_statement_that_looks_each_row_up_by_rowid(conn):
    rows = [("delivered", 0.0, "", "AA", 1, 2, i) for i in range(1, 129)]
    text = plan(conn, delivery.finish_rows_sql(len(rows)), tuple(p for r in rows for p in r))
    assert text.splitlines()[-2:] == ["SCAN v", "SEARCH messages USING INTEGER PRIMARY KEY (rowid=?)"]
