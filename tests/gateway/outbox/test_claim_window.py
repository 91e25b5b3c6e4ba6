"""The windowed claim API (claim_many / finish_many) on real SQLite files: order, TTL expiry
with its alert, one transaction per window of outcomes, and restart recovery."""

from __future__ import annotations

import sqlite3
import time

import pytest

from gateway.outbox import Outbox, OutboxBusy, Outcome, journal, queries


def hl7(cid: str) -> bytes:
    return f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|{cid}|P|2.6\rOBX|1|ST|x||x\r".encode()


async def put(ob: Outbox, lane: str, cid: str, *, ttl_s: float = 3600, kind: str = "pcd01") -> int:
    return await ob.enqueue(lane=lane, kind=kind, control_id=cid, payload=hl7(cid), ttl_s=ttl_s)


def states_in_file(path) -> dict[str, str]:
    """control_id -> state on record, read through an independent connection (what a crash
    leaves): a delivery in the delivery journal counts as delivered (opening applies it)."""
    journalled = {row[5] for row in journal.read(path)}
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT control_id, state FROM messages ORDER BY id").fetchall()
    return {cid: "delivered" if cid in journalled else state for cid, state in rows}


async def test_claim_many_returns_the_oldest_pending_first_and_holds_them_in_flight_in_memory(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    for i in range(10):
        await put(ob, "mqtt", f"C{i}")
    await put(ob, "other", "X0")
    first = await ob.claim_many("mqtt", 4)
    second = await ob.claim_many("mqtt", 4)  # skips the rows already in flight
    rest = await ob.claim_many("mqtt", 4)
    assert [m.control_id for m in first + second + rest] == [f"C{i}" for i in range(10)]
    assert all(m.state == "in_flight" for m in first + second + rest)
    assert await ob.claim_many("mqtt", 4) == []
    stats = ob.stats()
    assert (stats["mqtt"].in_flight, stats["mqtt"].pending, stats["other"].pending) == (10, 0, 1)
    # the file is not written for a claim: a crash now leaves exactly these rows to send again
    assert set(states_in_file(tmp_path / "o.db").values()) == {"pending"}
    ob.close()


async def test_a_row_requeued_while_others_are_in_flight_is_claimed_next_in_id_order(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    for i in range(6):
        await put(ob, "mqtt", f"C{i}")
    [c0] = await ob.claim_many("mqtt", 1)
    await ob.finish_many([Outcome(c0, "quarantined", reason="AE")])
    window = await ob.claim_many("mqtt", 2)  # C1, C2 in flight
    with sqlite3.connect(tmp_path / "o.db") as cli:  # the operator requeues C0 meanwhile
        assert queries.requeue(cli, msg_id=c0.id) == 1
    more = await ob.claim_many("mqtt", 10)
    assert [m.control_id for m in window] == ["C1", "C2"]
    assert [m.control_id for m in more] == ["C0", "C3", "C4", "C5"]  # C0 first, nothing twice
    ob.close()


async def test_claim_many_after_claim_serves_the_rows_claim_already_holds_first(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    for i in range(6):
        await put(ob, "doc", f"C{i}")
    one = await ob.claim("doc")  # claims a batch into memory, serves C0
    assert one is not None and one.control_id == "C0"
    window = await ob.claim_many("doc", 3)
    assert [m.control_id for m in window] == ["C1", "C2", "C3"]
    ob.close()


async def test_claim_many_expires_messages_past_their_ttl_on_the_way_with_one_alert(tmp_path):
    alerts = []
    ob = Outbox.open(tmp_path / "o.db", on_alert=lambda name, details: alerts.append((name, details)))
    await put(ob, "mqtt", "OLD1", ttl_s=0.05, kind="pcd04")
    await put(ob, "mqtt", "OLD2", ttl_s=0.05)
    await put(ob, "mqtt", "LIVE1")
    await put(ob, "mqtt", "LIVE2")
    await put(ob, "mqtt", "LIVE3")
    time.sleep(0.1)
    window = await ob.claim_many("mqtt", 2)
    # the expired rows do not count towards the limit: two live messages come back
    assert [m.control_id for m in window] == ["LIVE1", "LIVE2"]
    in_file = states_in_file(tmp_path / "o.db")
    assert in_file["OLD1"] == in_file["OLD2"] == "expired"
    assert in_file["LIVE3"] == "pending"
    assert [name for name, _ in alerts] == ["messages_expired"]
    assert alerts[0][1]["count"] == 2 and alerts[0][1]["kinds"] == ["pcd01", "pcd04"]
    ob.close()


async def test_claim_many_refuses_a_limit_below_one(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    with pytest.raises(ValueError):
        await ob.claim_many("mqtt", 0)
    ob.close()


async def test_finish_many_records_every_outcome_and_alerts_quarantine_and_expiry(tmp_path):
    alerts = []
    ob = Outbox.open(tmp_path / "o.db", on_alert=lambda name, details: alerts.append(name))
    for i in range(4):
        await put(ob, "mqtt", f"C{i}")
    a, b, c, d = await ob.claim_many("mqtt", 4)
    commits = []
    ob._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    await ob.finish_many(
        [
            Outcome(a, "delivered", ack_text="PUBACK"),
            Outcome(b, "quarantined", reason="rejected", ack_text="patient 123 unknown"),
            Outcome(c, "expired", reason="TTL passed"),
            Outcome(d, "delivered"),
        ]
    )
    ob._conn.set_trace_callback(None)
    assert len(commits) == 1  # one transaction for the whole window
    assert states_in_file(tmp_path / "o.db") == {
        "C0": "delivered",
        "C1": "quarantined",
        "C2": "expired",
        "C3": "delivered",
    }
    assert (b.state, b.reason, b.ack_text) == ("quarantined", "rejected", "patient 123 unknown")
    assert sorted(alerts) == ["message_quarantined", "messages_expired"]
    ob.close()


@pytest.mark.parametrize(
    "states, trigger",
    [
        # a window with a quarantine updates the rows themselves: the fourth update fails
        (
            ["delivered", "delivered", "quarantined", "delivered", "delivered"],
            "CREATE TEMP TRIGGER refuse_fourth BEFORE UPDATE OF state ON messages WHEN old.control_id = 'C3' "
            "BEGIN SELECT RAISE(ABORT, 'refused mid-way'); END",
        ),
    ],
    ids=["with-a-quarantine"],
)
async def test_finish_many_failing_midway_records_none_of_the_window_even_after_a_restart(tmp_path, states, trigger):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    for i in range(5):
        await put(ob, "mqtt", f"C{i}")
    window = await ob.claim_many("mqtt", 5)
    ob._conn.execute(trigger)  # a real SQLite failure on the fourth row, the first three already written
    outcomes = [Outcome(m, s) for m, s in zip(window, states)]
    with pytest.raises(OutboxBusy, match="refused mid-way"):
        await ob.finish_many(outcomes)
    assert set(states_in_file(path).values()) == {"pending"}  # nothing of the window on record
    assert all(m.state == "in_flight" for m in window)  # still this process's, to finish again
    ob.close()  # as after a crash: nothing of the window may count as recorded
    ob = Outbox.open(path)
    again = await ob.claim_many("mqtt", 10)
    assert [m.control_id for m in again] == [f"C{i}" for i in range(5)]
    await ob.finish_many([Outcome(m, s) for m, s in zip(again, states)])  # the same outcomes, retried
    assert list(states_in_file(path).values()) == states
    ob.close()


async def test_finish_many_refuses_an_unknown_state_before_writing_anything(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    await put(ob, "mqtt", "C0")
    [m] = await ob.claim_many("mqtt", 1)
    with pytest.raises(ValueError):
        await ob.finish_many([Outcome(m, "delivered"), Outcome(m, "pending")])  # type: ignore[arg-type]
    assert states_in_file(tmp_path / "o.db") == {"C0": "pending"} and ob.stats()["mqtt"].in_flight == 1
    ob.close()


async def test_restart_returns_a_claimed_window_to_pending_in_order(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    for i in range(6):
        await put(ob, "mqtt", f"C{i}")
    window = await ob.claim_many("mqtt", 4)
    await ob.finish_many([Outcome(window[0], "delivered")])
    ob.close()  # as after a crash: no aclose(), C1-C3 were in flight
    assert states_in_file(path)["C1"] == "pending"
    ob = Outbox.open(path)
    again = await ob.claim_many("mqtt", 10)
    assert [m.control_id for m in again] == ["C1", "C2", "C3", "C4", "C5"]  # C0 stays delivered
    ob.close()


async def test_a_claim_whose_transaction_fails_leaves_its_rows_to_the_next_claim(tmp_path):
    ob = Outbox.open(tmp_path / "o.db")
    await put(ob, "mqtt", "C0", ttl_s=0.01)  # expired on the way: an UPDATE in the claim's transaction
    for i in range(1, 4):
        await put(ob, "mqtt", f"C{i}")
    time.sleep(0.05)
    ob._conn.execute(
        "CREATE TEMP TRIGGER refuse_expiry BEFORE UPDATE OF state ON messages BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(OutboxBusy, match="refused"):
        await ob.claim_many("mqtt", 3)
    assert ob.stats()["mqtt"].in_flight == 0  # nothing claimed after all
    ob._conn.execute("DROP TRIGGER refuse_expiry")
    window = await ob.claim_many("mqtt", 3)
    assert [m.control_id for m in window] == ["C1", "C2", "C3"]
    assert states_in_file(tmp_path / "o.db")["C0"] == "expired"
    ob.close()


async def test_the_oldest_pending_age_leaves_out_the_messages_in_flight(tmp_path):
    clock = [time.time() - 600]
    ob = Outbox.open(tmp_path / "o.db", clock=lambda: clock[0])
    for i in range(3):
        await put(ob, "mqtt", f"C{i}")  # ten minutes old
    await ob.claim_many("mqtt", 3)
    lane = ob.stats()["mqtt"]
    assert (lane.pending, lane.in_flight, lane.oldest_pending_age_s) == (0, 3, None)
    clock[0] = time.time() - 5
    await put(ob, "mqtt", "C3")
    assert ob.stats()["mqtt"].oldest_pending_age_s < 60  # C3's age, not C0's
    ob.close()
