"""Thinning a large backlog is done in bounded slices across commits, and the slices thin
exactly the rows one pass over the whole table would have."""

from __future__ import annotations

import time

from gateway.outbox import budget, schema


def backlog(path, n: int, now: float):
    conn = schema.connect(path)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO messages (lane, kind, control_id, payload, size, state, created_at, ttl_s, expires_at, state_at) "
        "VALUES ('doc', ?, ?, x'00', 1000, 'pending', ?, 1e9, 1e9, 0)",
        (("pcd10" if i % 10 == 0 else "pcd01", f"C{i}", now - 8 * 3600 + i) for i in range(n)),
    )
    conn.execute("COMMIT")
    return conn


def survivors(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT control_id FROM messages")}


def run_episode(conn, used: int, max_bytes: int, now: float, slice_rows: int) -> tuple[int, list[int]]:
    cursor = budget.ThinCursor()
    per_commit = []
    commits = 0
    while True:
        conn.execute("BEGIN")
        outcome = budget.enforce(conn, used=used, max_bytes=max_bytes, now=now, cursor=cursor, slice_rows=slice_rows)
        conn.execute("COMMIT")
        per_commit.append(sum(outcome.thinned.values()))
        used = outcome.used
        commits += 1
        if not cursor.active:
            return commits, per_commit


def test_an_episode_looks_at_one_slice_per_commit_and_thins_like_one_pass(tmp_path):
    now = time.time()
    n = 3000
    used = n * (1000 + budget.ROW_OVERHEAD)
    max_bytes = int(used * 0.9)
    whole = backlog(tmp_path / "whole.db", n, now)
    sliced = backlog(tmp_path / "sliced.db", n, now)
    commits_whole, _ = run_episode(whole, used, max_bytes, now, slice_rows=10**9)
    commits, per_commit = run_episode(sliced, used, max_bytes, now, slice_rows=100)
    assert commits_whole == 1 and commits > 5  # the work was spread over many commits
    assert max(per_commit) <= 100  # no commit looked at more than its slice
    assert survivors(sliced) == survivors(whole)
    assert {f"C{i}" for i in range(0, n, 10)} <= survivors(sliced)  # events never thinned
    low_water = int(max_bytes * budget.LOW_WATER)
    assert (n - len(survivors(sliced))) * (1000 + budget.ROW_OVERHEAD) >= used - low_water
    whole.close()
    sliced.close()


def test_with_nothing_thinnable_the_episode_ends_over_budget_after_a_bounded_number_of_probes(tmp_path):
    now = time.time()
    conn = schema.connect(tmp_path / "o.db")
    conn.execute(
        "INSERT INTO messages (lane, kind, control_id, payload, size, state, created_at, ttl_s, expires_at, state_at) "
        "VALUES ('doc', 'pcd04', 'A', x'00', 1000, 'pending', 0, 1e9, 1e9, 0)"
    )
    cursor = budget.ThinCursor()
    outcome = budget.enforce(conn, used=10_000, max_bytes=1_000, now=now, cursor=cursor, slice_rows=1000)
    assert outcome.still_over and not cursor.active and survivors(conn) == {"A"}
    conn.close()


def test_rows_chosen_at_one_level_are_counted_once_when_the_same_pass_goes_on_to_the_next(tmp_path):
    now = time.time()
    n = 300
    conn = backlog(tmp_path / "o.db", n, now)
    used = n * (1000 + budget.ROW_OVERHEAD)
    # far over: level after level within one call, each re-reading the rows chosen before
    outcome = budget.enforce(conn, used=used * 4, max_bytes=used // 10, now=now, slice_rows=10**6)
    conn.commit()
    thinned = n - len(survivors(conn))
    assert sum(outcome.thinned.values()) == thinned
    assert conn.execute("SELECT thinned FROM lane_counters WHERE lane='doc'").fetchone()[0] == thinned
    conn.close()
