"""Deliveries recorded in the delivery journal (one write each) and applied to their rows
later: on real files, a journalled delivery is never sent again -- after a crash, a sender
restart or a clean stop -- every figure counts it as delivered at once, and a journal that
does not belong to the file beside it marks nothing delivered."""

from __future__ import annotations

import contextlib
import resource
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator

import pytest

from gateway.outbox import Outbox, OutboxBusy, Outcome, journal, queries
from gateway.outbox.delivery import LOG_LIMIT
from gateway.outbox.journal import DeliveryJournal, journal_path


async def fill(ob: Outbox, lane: str, n: int) -> None:
    for i in range(n):
        await ob.enqueue(lane=lane, kind="pcd01", control_id=f"C{i}", payload=b"MSH|" + str(i).encode(), ttl_s=3600)


def rows(path) -> dict[str, str]:
    """control_id -> state of the message rows themselves (not the log)."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT control_id, state FROM messages ORDER BY id"))


@contextlib.contextmanager
def files_limited_to(size: int) -> Iterator[None]:
    """Writes past ``size`` bytes of any file fail (RLIMIT_FSIZE, EFBIG), as on a full disk."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def logged(path) -> int:
    """Deliveries in the journal beside ``path``."""
    return journal_path(path).read_bytes().count(b"\n")


async def test_a_delivery_is_one_journal_line_and_no_sql_until_the_batch_runs_out(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 5)
    msg = await ob.claim("doc")
    seen: list[str] = []
    ob._conn.set_trace_callback(seen.append)
    msg = await ob.finish(msg, "delivered", ack_text="AA")  # more claimed rows in hand: the journal only
    ob._conn.set_trace_callback(None)
    assert seen == []  # no SQLite statement, no WAL frame
    assert rows(path)["C0"] == "pending" and logged(path) == 1
    while msg is not None:  # the lane runs dry: one transaction applies the journal
        msg = await ob.finish(msg, "delivered", ack_text="AA")
    assert set(rows(path).values()) == {"delivered"} and logged(path) == 0
    ob.close()


async def test_a_journalled_delivery_is_not_claimed_again_when_the_rest_of_its_batch_expired(tmp_path):
    """Its row still says pending until the journal is applied: the claim that follows the
    expired rest of claim()'s batch must not take it for a pending message."""
    ob = Outbox.open(tmp_path / "o.db")
    await fill(ob, "doc", 2)
    for i in range(2, 5):
        await ob.enqueue(lane="doc", kind="pcd01", control_id=f"C{i}", payload=b"MSH|x", ttl_s=0.2)
    first = await ob.claim("doc")  # C0..C4 claimed into memory
    second = await ob.finish(first, "delivered", ack_text="AA")  # C0: a journal line
    time.sleep(0.3)  # C2..C4 pass their TTL
    third = await ob.finish(second, "delivered", ack_text="AA")  # C1 journalled; the rest expire
    assert [first.control_id, second.control_id, third] == ["C0", "C1", None]
    assert ob.stats()["doc"].delivered == 2 and ob.stats()["doc"].expired == 3
    ob.close()


async def test_a_logged_delivery_survives_a_crash_and_is_not_sent_again(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 4)
    first = await ob.claim("doc")
    second = await ob.finish(first, "delivered", ack_text="AA")  # logged, not applied
    assert second is not None and second.control_id == "C1"
    ob.close()  # as after SIGKILL: no clean stop, C1 on the wire, C0 only in the journal
    assert rows(path)["C0"] == "pending" and logged(path) == 1
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
    await ob.finish_many([Outcome(a, "delivered", ack_text="AA")])  # the journal
    assert await ob.reset_lane("doc") == 2  # b and c back to pending; a stays delivered
    assert rows(path) == {"C0": "delivered", "C1": "pending", "C2": "pending"}
    assert [m.control_id for m in await ob.claim_many("doc", 10)] == ["C1", "C2"]
    await ob.aclose()
    assert rows(path) == {"C0": "delivered", "C1": "pending", "C2": "pending"}


async def test_the_daemons_figures_count_a_journalled_delivery_as_delivered_at_once(tmp_path):
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
    # Another process (the operator CLI) reads the rows: it sees messages in flight as pending,
    # and until the lane's next batch applies the journal, the delivery too (at most LOG_LIMIT
    # rows, briefly).
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as cli:
        assert queries.lane_stats(cli)["doc"].pending == 3
    assert await ob.claim_many("doc", 1) == []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as cli:
        cli_stats = queries.lane_stats(cli)["doc"]
        assert (cli_stats.delivered, cli_stats.pending, cli_stats.in_flight) == (1, 2, 0)
    ob.close()


async def test_a_window_applied_in_one_statement_leaves_each_row_its_own_outcome(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 6)
    window = await ob.claim_many("doc", 6)
    for i, msg in enumerate(window[:4]):  # journalled one by one, each with its own ACK
        msg.attempts = i + 1
        ob.delivered(msg, "CA" if i % 2 else "AA")
    await ob.finish_many([Outcome(window[4], "quarantined", reason="AE from receiver", ack_text="bad field")])
    assert logged(path) == 0  # the quarantine applied the journal with it, in one transaction
    await ob.finish_many([Outcome(window[5], "delivered", ack_text="AA")])
    assert await ob.claim_many("doc", 1) == []  # applies the last journal line
    with sqlite3.connect(path) as conn:
        got = conn.execute(
            "SELECT control_id, state, ack_text, reason, attempts, size - length(payload), state_at "
            "FROM messages ORDER BY id"
        ).fetchall()
    assert [r[:6] for r in got] == [
        ("C0", "delivered", "AA", "", 1, 2),
        ("C1", "delivered", "CA", "", 2, 2),
        ("C2", "delivered", "AA", "", 3, 2),
        ("C3", "delivered", "CA", "", 4, 2),
        ("C4", "quarantined", "bad field", "AE from receiver", 0, len("bad field") + len("AE from receiver")),
        ("C5", "delivered", "AA", "", 0, 2),
    ]
    assert [r[6] for r in got] == [m.state_at for m in window]  # each row's own time, not the batch's
    assert len({r[6] for r in got}) == 6
    assert ob.stats()["doc"].bytes == ob.bytes == queries.total_bytes(ob._conn)
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


async def test_a_journal_left_beside_a_replaced_outbox_marks_nothing_delivered(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 3)
    [a, _, _] = await ob.claim_many("doc", 3)
    await ob.finish_many([Outcome(a, "delivered")])
    ob.close()  # crash: the journal holds message 1
    kept = tmp_path / "kept-journal"
    shutil.copy(journal_path(path), kept)
    for side in ("", "-wal", "-shm", "-delivered"):  # the operator moves the outbox aside...
        (tmp_path / f"o.db{side}").unlink(missing_ok=True)
    shutil.copy(kept, journal_path(path))  # ...but the journal stays behind
    ob = Outbox.open(path)
    for i in range(3):  # new messages, ids from 1 again, other control ids
        await ob.enqueue(lane="doc", kind="pcd01", control_id=f"N{i}", payload=b"MSH|n", ttl_s=3600)
    ob.close()
    ob = Outbox.open(path)
    assert rows(path) == {"N0": "pending", "N1": "pending", "N2": "pending"}
    ob.close()


async def test_a_journal_write_cut_short_records_none_of_the_window(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 6)
    window = await ob.claim_many("doc", 6)
    await ob.finish_many([Outcome(window[0], "delivered")])
    size = journal_path(path).stat().st_size
    with files_limited_to(size + 60), pytest.raises(OutboxBusy):  # room for about one more line
        await ob.finish_many([Outcome(m, "delivered") for m in window[1:]])
    assert journal_path(path).stat().st_size == size  # cut back: no torn line, no part of the window
    assert all(m.state == "in_flight" for m in window[1:])
    await ob.finish_many([Outcome(m, "delivered") for m in window[1:]])  # retried whole
    ob.close()
    ob = Outbox.open(path)  # applies the journal
    assert set(rows(path).values()) == {"delivered"}
    ob.close()


async def test_a_delivery_whose_journal_line_cannot_be_written_is_refused_unrecorded_and_recorded_on_retry(tmp_path):
    path = tmp_path / "o.db"
    ob = Outbox.open(path)
    await fill(ob, "doc", 2)
    first, second = await ob.claim_many("doc", 2)
    ob.delivered(first, "AA")
    size = journal_path(path).stat().st_size
    with files_limited_to(size), pytest.raises(OutboxBusy):  # no room for another line; a RetryLater
        ob.delivered(second, "AA")
    assert second.state == "in_flight" and journal_path(path).stat().st_size == size
    assert ob.stats()["doc"].delivered == 1
    ob.delivered(second, "AA")
    assert ob.stats()["doc"].delivered == 2
    ob.close()
    ob = Outbox.open(path)  # applies the journal
    assert set(rows(path).values()) == {"delivered"}
    ob.close()


def test_journal_lines_carry_any_text_exactly_and_a_torn_tail_ends_the_reading(tmp_path):
    path = tmp_path / "o.db"
    j = DeliveryJournal(path)
    j.append([("C\t1\n", ("delivered", 1.25, "", "AE\tpatient\nlé\ud800", 3, 9, 42))])
    j.append([("C2", ("delivered", 2.5, "", "AA", 1, 2, 43))])
    j.close()
    with open(journal_path(path), "ab") as f:
        f.write(b"44\t3.0\t1\t2\t'C3")  # a line cut short by a power loss
    assert journal.read(path) == [
        (1.25, "AE\tpatient\nlé\ud800", 3, 9, 42, "C\t1\n"),
        (2.5, "AA", 1, 2, 43, "C2"),
    ]
    assert oct(journal_path(path).stat().st_mode & 0o777) == "0o640"  # the ACK text may be peer text
