"""The web audit trail in PostgreSQL: rows chain by hash; an edited or deleted row is found."""

from __future__ import annotations

import psycopg

from fleet.web import audit


def test_the_chain_verifies_and_an_edited_or_deleted_row_breaks_it(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        audit.ensure_schema(conn)
        for n in range(4):
            audit.append(conn, "login_failed", f"user{n}", "10.0.0.1", {"n": n})
        assert audit.verify_chain(conn) is None
        rows = audit.recent(conn)
        assert [r.username for r in rows] == ["user3", "user2", "user1", "user0"]
        second = rows[2].id
        conn.execute("UPDATE web_audit SET username = 'someone' WHERE id = %s", (second,))
        assert audit.verify_chain(conn) == second
        conn.execute("UPDATE web_audit SET username = 'user1' WHERE id = %s", (second,))
        assert audit.verify_chain(conn) is None
        conn.execute("DELETE FROM web_audit WHERE id = %s", (second,))
        assert audit.verify_chain(conn) == second + 1
