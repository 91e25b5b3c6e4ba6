"""Deliveries recorded in the delivery log (one small commit each) and applied to their rows
later: on real SQLite files, a logged delivery is never sent again -- after a crash, a sender
restart or a clean stop -- and every figure counts it as delivered at once."""

from __future__ import annotations

import sqlite3

from gateway.outbox import Outbox, Outcome, queries
from gateway.outbox.delivery import LOG_LIMIT


async def fill(ob: Outbox, lane: str, n: int) -> None:
    for i in range(n):
        await ob.enqueue(lane=lane, kind="pcd01", control_id=f"C{i}", payload=b"MSH|" + str(i).encode(), ttl_s=3600)


def rows(path) -> dict[str, str]:
    """control_id -> state of the message rows themselves (not the log)."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT control_id, state FROM messages ORDER BY id"))


def logged(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM delivery_log").fetchone()[0]


async def test_a_delivery_is_one_insert_into_the_log_until_the_batch_runs_out(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 5)
    msg = await ob.claim("doc")
    seen: list[str] = []
    ob._conn.set_trace_callback(seen.append)
    msg = await ob.finish(msg, "delivered", ack_text="AA")  # more claimed rows in hand: the log only
    ob._conn.set_trace_callback(None)
    assert [s.split(" ")[0] for s in seen] == ["INSERT"]  # one statement, its own commit
    assert rows(path)["C0"] == "in_flight" and logged(path) == 1
    while msg is not None:  # the lane runs dry: one transaction applies the log
        msg = await ob.finish(msg, "delivered", ack_text="AA")
    assert set(rows(path).values()) == {"delivered"} and logged(path) == 0
    ob.close()


async def test_a_logged_delivery_survives_a_crash_and_is_not_sent_again(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 4)
    first = await ob.claim("doc")
    second = await ob.finish(first, "delivered", ack_text="AA")  # logged, not applied
    assert second is not None and second.control_id == "C1"
    ob.close()  # as after SIGKILL: no clean stop, C1 on the wire, C0 only in the log
    assert rows(path)["C0"] == "in_flight" and logged(path) == 1
    ob = Outbox.open(path)
    assert rows(path) == {"C0": "delivered", "C1": "pending", "C2": "pending", "C3": "pending"}
    assert logged(path) == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT ack_text FROM messages WHERE control_id='C0'").fetchone()[0] == "AA"
    resent = await ob.claim_many("doc", 10)
    assert [m.control_id for m in resent] == ["C1", "C2", "C3"]  # only the one in flight again
    ob.close()


async def test_a_sender_restarting_on_its_lane_does_not_resend_logged_deliveries(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 3)
    [a, b, c] = await ob.claim_many("doc", 3)
    await ob.finish_many([Outcome(a, "delivered", ack_text="AA")])  # the log
    assert await ob.reset_lane("doc") == 2  # b and c back to pending; a stays delivered
    assert rows(path) == {"C0": "delivered", "C1": "pending", "C2": "pending"}
    assert [m.control_id for m in await ob.claim_many("doc", 10)] == ["C1", "C2"]
    await ob.aclose()
    assert rows(path) == {"C0": "delivered", "C1": "pending", "C2": "pending"}


async def test_figures_count_a_logged_delivery_as_delivered_at_once(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 3)
    [a, _, _] = await ob.claim_many("doc", 3)
    before = ob.stats()["doc"].bytes
    await ob.finish_many([Outcome(a, "delivered", ack_text="AA")])
    assert logged(path) == 1
    stats = ob.stats()["doc"]
    assert (stats.delivered, stats.in_flight, stats.pending) == (1, 2, 0)
    assert stats.bytes == before + 2 == ob.bytes  # the stored ACK text counts at once
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as cli:  # the operator CLI's view
        assert queries.lane_stats(cli)["doc"].delivered == 1
    ob.close()


async def test_the_log_never_holds_more_than_its_limit(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", LOG_LIMIT + 40)
    window = await ob.claim_many("doc", LOG_LIMIT + 40)
    most = 0
    for msg in window:  # deliveries alone, never a claim in between (as MQTT's PUBACKs may come)
        await ob.finish_many([Outcome(msg, "delivered")])
        most = max(most, logged(path))
    assert most <= LOG_LIMIT
    assert ob.stats()["doc"].delivered == LOG_LIMIT + 40
    ob.close()
