"""The audit trail: append-only, chained, tamper-evident, retention keeps it verifiable."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import AuditError, AuditTrail, verify_rows
from gateway.audit.chain import GENESIS, AuditRow, canonical, row_hash


def _fill(trail: AuditTrail, n: int) -> None:
    for i in range(n):
        trail.append("identity.firmware_changed", f"bed{i % 3}", {"from": f"1.{i}", "to": f"1.{i + 1}"})


def test_an_untouched_trail_verifies(tmp_path):
    trail = AuditTrail.open(tmp_path / "gw.db")
    _fill(trail, 5)
    assert trail.verify() == []
    rows = trail.rows()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS and rows[1].prev_hash == rows[0].hash


def test_update_is_refused_by_the_database(tmp_path):
    trail = AuditTrail.open(tmp_path / "gw.db")
    _fill(trail, 2)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        trail.connection.execute("UPDATE audit SET subject='x' WHERE seq=1")


def test_a_row_edited_with_sqlite3_is_found(tmp_path):
    path = tmp_path / "gw.db"
    trail = AuditTrail.open(path)
    _fill(trail, 4)
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("""UPDATE audit SET detail='{"from":"1.1","to":"9.9"}' WHERE seq=2""")
    raw.commit()
    raw.close()
    findings = AuditTrail.open_readonly(path).verify()
    assert [f.seq for f in findings] == [2]
    assert "edited" in findings[0].problem


def test_an_edit_that_also_rehashes_its_row_is_found_at_the_next_row(tmp_path):
    path = tmp_path / "gw.db"
    trail = AuditTrail.open(path)
    _fill(trail, 4)
    row = trail.rows()[1]
    forged = row_hash(row.prev_hash, row.seq, row.at, row.kind, "bed9", row.actor, row.detail)
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET subject='bed9', hash=? WHERE seq=2", (forged,))
    raw.commit()
    raw.close()
    assert [f.seq for f in AuditTrail.open_readonly(path).verify()] == [3]


@pytest.mark.parametrize("deleted, reported", [(1, 2), (3, 4), (6, 6)])
def test_a_deleted_row_is_found_wherever_it_was(tmp_path, deleted, reported):
    path = tmp_path / "gw.db"
    trail = AuditTrail.open(path)
    _fill(trail, 6)
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM audit WHERE seq=?", (deleted,))
    raw.commit()
    raw.close()
    findings = AuditTrail.open_readonly(path).verify()
    assert findings and findings[0].seq == reported
    assert all("deleted" in f.problem or "chain" in f.problem for f in findings)


def test_retention_deletes_old_rows_and_the_chain_still_verifies(tmp_path):
    trail = AuditTrail.open(tmp_path / "gw.db")
    _fill(trail, 5)
    later = datetime.now(UTC) + timedelta(days=400)
    assert trail.apply_retention(365, now=later) == 5
    rows = trail.rows()
    assert [r.kind for r in rows] == ["audit.retention"]
    assert rows[0].detail_dict["anchor_seq"] == 5
    _fill(trail, 2)
    assert trail.verify() == []
    # and a second retention round anchors on the first checkpoint
    assert trail.apply_retention(365, now=later + timedelta(days=400)) == 3
    assert trail.verify() == []


def test_retention_below_one_year_is_refused(tmp_path):
    trail = AuditTrail.open(tmp_path / "gw.db")
    with pytest.raises(AuditError, match="below the minimum"):
        trail.apply_retention(30)


def test_deleting_old_rows_without_a_checkpoint_is_found(tmp_path):
    path = tmp_path / "gw.db"
    trail = AuditTrail.open(path)
    _fill(trail, 4)
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM audit WHERE seq <= 2")
    raw.commit()
    raw.close()
    findings = AuditTrail.open_readonly(path).verify()
    assert findings[0].seq == 3 and "retention checkpoint" in findings[0].problem


def test_readonly_trail_refuses_to_append(tmp_path):
    path = tmp_path / "gw.db"
    AuditTrail.open(path).append("k", "s", {})
    with pytest.raises(AuditError, match="read-only"):
        AuditTrail.open_readonly(path).append("k", "s", {})


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(_text, _text, _text, st.dictionaries(_text, _text, max_size=3)), min_size=1, max_size=8),
    st.data(),
)
def test_any_single_field_change_breaks_the_chain(entries, data):
    """Pure chain: whatever the content, changing any one field of any row is detected."""
    rows, prev = [], GENESIS
    for seq, (kind, subject, actor, detail) in enumerate(entries, start=1):
        text = canonical(detail)
        h = row_hash(prev, seq, "2026-12-06T12:00:00.000000+00:00", kind, subject, actor, text)
        rows.append(AuditRow(seq, "2026-12-06T12:00:00.000000+00:00", kind, subject, actor, text, prev, h))
        prev = h
    assert verify_rows(rows, highest_seq=len(rows)) == []
    i = data.draw(st.integers(0, len(rows) - 1))
    name = data.draw(st.sampled_from(["at", "kind", "subject", "actor", "detail"]))
    new = getattr(rows[i], name) + "x"
    fields = {f: getattr(rows[i], f) for f in AuditRow.__slots__}
    fields[name] = new
    rows[i] = AuditRow(**fields)
    assert verify_rows(rows, highest_seq=len(rows)) != []
