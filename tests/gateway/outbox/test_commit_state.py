"""``Outbox.commit``: one event's messages for every lane and the pump's state, all or nothing;
migration 2 (``pump_state``) applied to a round-1 outbox file without losing a message."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from gateway.outbox import NewMessage, Outbox, PumpStateRow, schema


def msg(lane: str, n: int) -> NewMessage:
    return NewMessage(lane, "pcd04", f"C{n}", f"MSH|{n}".encode(), 60.0)


async def test_messages_of_every_lane_and_the_state_row_commit_together(tmp_path):
    outbox = Outbox.open(tmp_path / "o.db")
    ids = await outbox.commit(
        [msg("ehr.alarms", 1), msg("am.alarms", 2), msg("mqtt-alarms", 3)], [PumpStateRow("bed01", 1, '{"a":1}')]
    )
    assert len(ids) == 3 and ids == sorted(ids)
    assert outbox.load_states() == {"bed01": (1, '{"a":1}')}
    await outbox.commit([], [PumpStateRow("bed01", 1, '{"a":2}')])  # upsert: one row per pump
    assert outbox.load_states() == {"bed01": (1, '{"a":2}')}
    outbox.close()


async def test_a_commit_failing_in_sqlite_leaves_neither_messages_nor_state(tmp_path):
    outbox = Outbox.open(tmp_path / "o.db")

    def refuse(lane: str) -> int:
        if lane == "am.alarms":
            raise OSError("disk full")
        return 0

    outbox._conn.create_function("refuse", 1, refuse)
    outbox._conn.execute("CREATE TEMP TRIGGER t BEFORE INSERT ON messages BEGIN SELECT refuse(NEW.lane); END")
    with pytest.raises(sqlite3.OperationalError):
        await outbox.commit([msg("ehr.alarms", 1), msg("am.alarms", 2)], [PumpStateRow("bed01", 1, "{}")])
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM pump_state").fetchone()[0] == 0
    outbox.close()


async def test_one_callers_failed_commit_does_not_fail_another_callers_commit_later_in_the_loop(tmp_path):
    outbox = Outbox.open(tmp_path / "o.db")
    with pytest.raises(ValueError):
        await outbox.commit([NewMessage("ehr", "pcd10", "C1", b"x", 0.0)])  # refused before queueing
    results = await asyncio.gather(outbox.commit([msg("ehr", 1)]), outbox.commit([msg("ehr", 2)]))
    assert [len(r) for r in results] == [1, 1]
    outbox.close()


def test_a_round_one_outbox_file_is_migrated_and_keeps_its_messages(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in schema.MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.execute(
        "INSERT INTO messages (lane, kind, control_id, payload, size, state, created_at, ttl_s, expires_at, "
        "state_at) VALUES ('ehr', 'pcd10', 'C1', x'41', 1, 'pending', 0, 1e9, 1e9, 0)"
    )
    conn.close()
    outbox = Outbox.open(path)
    assert outbox.load_states() == {}
    outbox.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert db.execute("SELECT control_id, state FROM messages").fetchall() == [("C1", "pending")]


async def test_units_sharing_a_group_commit_each_get_the_ids_of_their_own_messages_in_order(tmp_path):
    from gateway.outbox.groupcommit import INSERT_ROWS_MAX

    ob = Outbox.open(tmp_path / "o.db")
    sizes = [3, 1, INSERT_ROWS_MAX + 7, 2]  # one unit spans two INSERT statements
    units = [
        [NewMessage(f"lane{k % 2}", "pcd01", f"U{k}-{i}", f"payload {k} {i}".encode(), 60) for i in range(n)]
        for k, n in enumerate(sizes)
    ]
    results = await asyncio.gather(*(ob.commit(u) for u in units))  # one loop turn: one batch
    every = [i for ids in results for i in ids]
    assert every == sorted(every) and len(set(every)) == sum(sizes)
    with sqlite3.connect(tmp_path / "o.db") as conn:
        by_id = dict(conn.execute("SELECT id, control_id FROM messages"))
    for unit, ids in zip(units, results):
        assert [by_id[i] for i in ids] == [m.control_id for m in unit]
    ob.close()
