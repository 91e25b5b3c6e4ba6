"""The per (lane, state) totals (schema step 9) equal a full count after any change, whoever
makes it: the daemon's outbox or the operator CLI's statements on the same file."""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.outbox import Outbox, queries, schema
from gateway.outbox.model import STATES


def full_count(conn: sqlite3.Connection) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (lane, state): (n, b)
        for lane, state, n, b in conn.execute(
            "SELECT lane, state, COUNT(*), SUM(size) FROM messages GROUP BY lane, state"
        )
    }


def totals(conn: sqlite3.Connection) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (lane, state): (n, b)
        for lane, state, n, b in conn.execute("SELECT lane, state, count, bytes FROM message_totals WHERE count != 0")
    }


lanes = st.sampled_from(["doc", "alarm", "mqtt/x"])
states = st.sampled_from(STATES)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), lanes, states, st.integers(0, 5000)),
        st.tuples(st.just("state"), st.integers(0, 40), states),
        st.tuples(st.just("lane"), st.integers(0, 40), lanes),
        st.tuples(st.just("size"), st.integers(0, 40), st.integers(0, 5000)),
        st.tuples(st.just("delete"), st.integers(0, 40)),
        st.tuples(st.just("delete_state"), states),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
def test_totals_equal_a_full_count_after_any_sequence_of_statements(tmp_path_factory, ops):
    conn = schema.connect(tmp_path_factory.mktemp("t") / "o.db")
    try:
        for op in ops:
            if op[0] == "insert":
                _, lane, state, size = op
                conn.execute(
                    "INSERT INTO messages (lane, kind, control_id, payload, size, state, created_at, ttl_s, "
                    "expires_at, state_at) VALUES (?, 'pcd01', 'C', x'00', ?, ?, 0, 1, 1, 0)",
                    (lane, size, state),
                )
            elif op[0] == "state":
                conn.execute("UPDATE messages SET state=? WHERE id % 41 = ?", (op[2], op[1]))
            elif op[0] == "lane":
                conn.execute("UPDATE messages SET lane=? WHERE id % 41 = ?", (op[2], op[1]))
            elif op[0] == "size":
                conn.execute("UPDATE messages SET size=? WHERE id % 41 = ?", (op[2], op[1]))
            elif op[0] == "delete":
                conn.execute("DELETE FROM messages WHERE id % 41 = ?", (op[1],))
            else:
                conn.execute("DELETE FROM messages WHERE state = ?", (op[1],))
            assert totals(conn) == full_count(conn)
    finally:
        conn.close()


def test_an_existing_outbox_gets_its_totals_when_upgraded(tmp_path):
    path = tmp_path / "o.db"
    conn = schema.connect(path)
    conn.executemany(
        "INSERT INTO messages (lane, kind, control_id, payload, size, state, created_at, ttl_s, expires_at, state_at) "
        "VALUES (?, 'pcd01', 'C', x'00', ?, 'pending', 0, 1, 1, 0)",
        [("doc", 10), ("doc", 20), ("alarm", 5)],
    )
    # back to a file written before step 9
    conn.executescript(
        "DROP TRIGGER messages_totals_insert; DROP TRIGGER messages_totals_delete; "
        "DROP TRIGGER messages_totals_update; DROP TABLE message_totals; "
        f"PRAGMA user_version={max(v for v in schema.MIGRATIONS if v < 9)};"
    )
    conn.close()
    conn = schema.connect(path)
    assert totals(conn) == {("doc", "pending"): (2, 30), ("alarm", "pending"): (1, 5)}
    conn.close()


async def test_stats_and_bytes_follow_enqueue_claim_finish_compact_and_cli_requeue(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path, delivered_retention_s=0)
    for i in range(70):
        await ob.enqueue(lane="doc" if i % 2 else "alarm", kind="pcd01", control_id=f"C{i}", payload=b"x" * i, ttl_s=60)
    msg = await ob.claim("doc")
    await ob.finish(msg, "delivered")  # claims the next one
    q = await ob.claim("alarm")
    await ob.finish(q, "quarantined", reason="AE", claim_next=False)
    stats = ob.stats()  # this process's figures: the claimed batches are in flight
    assert (stats["doc"].pending, stats["doc"].in_flight, stats["doc"].delivered) == (35 - 32, 31, 1)
    assert (stats["alarm"].quarantined, stats["alarm"].in_flight) == (1, 31)
    # the file's: claims are not written, so the batches are pending there
    assert (queries.lane_stats(ob._reader)["doc"].pending, queries.lane_stats(ob._reader)["doc"].in_flight) == (34, 0)
    stored = sum(range(70)) + len("AE")  # payloads, and the reason kept with the quarantined row
    assert ob.bytes == stored == sum(b for _, b in full_count(ob._conn).values())
    cli = schema.connect(path, create=False)  # the operator, in a second process
    assert queries.requeue(cli, all_quarantined=True) == 1
    assert full_count(cli) == totals(cli)
    cli.close()
    assert await ob.compact() == 1
    assert ob.bytes == stored - 1  # the delivered message was C1 (one byte)
    assert queries.lane_stats(ob._reader)["alarm"].pending == 35  # 34 never sent + the requeued one
    assert ob.stats()["alarm"].pending == 35 - 31  # 31 of them in flight here
    ob.close()
