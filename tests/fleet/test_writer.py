"""The batch writer against a real PostgreSQL: idempotent, newest-wins, no patient data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg

from fleet.db.writer import Writer
from fleet.ingest.parse import parse_message
from fleet.sim import payloads as P

PFX = "pumpgw/v1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDENT = P.identity("New Era", "NE-1000", "SN1", "3.9", "L7")


def records(*messages: tuple[str, bytes, bool]) -> list:
    return [r for m in messages if (r := parse_message(PFX, m[0], m[1])) is not None]


def count(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def test_redelivered_batch_leaves_every_table_unchanged(db: psycopg.Connection) -> None:
    batch = records(
        P.status(PFX, "h", "gw1", state="online", session="s1", since=T0, ward="ICU3"),
        P.inventory(
            PFX,
            "h",
            "gw1",
            ward="ICU3",
            at=T0,
            central_library="L7",
            pumps=[{"pump": "p1", **IDENT, "last_seen": T0.isoformat(), "asset_tag": "A-1", "bed": "7"}],
        ),
        P.state(
            PFX,
            "h",
            "gw1",
            "p1",
            at=T0,
            ident=IDENT,
            running="infusing",
            drug="heparin",
            verdict="above_soft_max",
            library="L7",
        ),
        P.event(PFX, "h", "gw1", "p1", kind="delivery_start", at=T0, seq=1, drug="heparin"),
        P.alarm(PFX, "h", "gw1", "p1", phase="onset", at=T0 + timedelta(seconds=5), seq=2, instance="a1"),
        P.alert(PFX, "h", "gw1", name="outbox_budget_thinned", at=T0, seq=3),
        P.gateway_library(PFX, "h", "gw1", version="L7", applied_at=T0),
        P.release(PFX, version="L7", released_at=T0),
    )
    w = Writer()
    w.write(db, batch)
    tables = [
        "gateways",
        "pumps",
        "pump_identity_history",
        "events",
        "alarms",
        "gateway_alerts",
        "verdicts",
        "gateway_library_history",
        "library_releases",
    ]
    before = {t: count(db, t) for t in tables}
    assert all(before.values()), before
    w.write(db, batch)
    Writer().write(db, batch)  # a fresh collector (cold caches) replaying the same messages
    assert {t: count(db, t) for t in tables} == before


def test_events_of_a_new_month_get_their_partition(db: psycopg.Connection) -> None:
    Writer().write(
        db,
        records(
            P.event(PFX, "h", "gw1", "p1", kind="delivery_start", at=T0, seq=1),
            P.event(PFX, "h", "gw1", "p1", kind="delivery_stop", at=T0 + timedelta(days=40), seq=2),
        ),
    )
    parts = {
        r[0]
        for r in db.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass")
    }
    assert parts == {"events_y2026m03", "events_y2026m04"}


def test_an_older_retained_state_never_replaces_a_newer_one(db: psycopg.Connection) -> None:
    new = P.state(
        PFX,
        "h",
        "gw1",
        "p1",
        at=T0 + timedelta(minutes=5),
        ident={**IDENT, "drug_library_version": "L8"},
        running="idle",
        drug=None,
        verdict=None,
        library="L8",
    )
    old = P.state(
        PFX, "h", "gw1", "p1", at=T0, ident=IDENT, running="infusing", drug="heparin", verdict=None, library="L7"
    )
    Writer().write(db, records(new, old))
    lib, states = db.execute("SELECT library_version, channel_states FROM pumps").fetchone()  # type: ignore[misc]
    assert lib == "L8" and states[0]["state"] == "idle"


def test_a_late_last_will_of_an_old_session_does_not_mark_the_gateway_offline(db: psycopg.Connection) -> None:
    Writer().write(
        db,
        records(
            P.status(PFX, "h", "gw1", state="online", session="s2", since=T0 + timedelta(minutes=1), ward="ICU3"),
            P.status(PFX, "h", "gw1", state="offline", session="s1", since=T0 + timedelta(minutes=2), ward="ICU3"),
        ),
    )
    assert db.execute("SELECT state, session FROM gateways").fetchone() == ("online", "s2")
    Writer().write(
        db,
        records(P.status(PFX, "h", "gw1", state="offline", session="s2", since=T0 + timedelta(minutes=3), ward="ICU3")),
    )
    assert db.execute("SELECT state FROM gateways").fetchone() == ("offline",)


def test_patient_identifiers_published_by_a_gateway_never_reach_the_database(db: psycopg.Connection) -> None:
    topic, raw, _ = P.event(PFX, "h", "gw1", "p1", kind="delivery_start", at=T0, seq=1, drug="heparin")
    doc = json.loads(raw)
    doc["detail"].update({"patient_id": "19121212-1212", "Patient_Name": "DOE^JOHN", "mrn": "MRN99", "rate": "5"})
    doc["channel_state"]["patient_weight"] = {"value": "93.71", "unit": "kg"}
    doc["patient"] = {"id": "19121212-1212"}
    s_topic, s_raw, _ = P.state(
        PFX,
        "h",
        "gw1",
        "p1",
        at=T0,
        ident=IDENT,
        running="infusing",
        drug="heparin",
        verdict="within_limits",
        library="L7",
    )
    sdoc = json.loads(s_raw)
    sdoc["patient"] = {"id": "19121212-1212", "name": "DOE^JOHN"}
    sdoc["verdicts"][0]["patient_id"] = "19121212-1212"
    Writer().write(
        db,
        [parse_message(PFX, topic, json.dumps(doc).encode()), parse_message(PFX, s_topic, json.dumps(sdoc).encode())],
    )
    dump = " ".join(
        str(row)
        for table in ("events", "pumps", "verdicts", "pump_identity_history", "gateways", "rejected_messages")
        for row in db.execute(f"SELECT * FROM {table}").fetchall()
    )
    assert "heparin" in dump and "'rate': '5'" in dump  # device data kept
    for secret in ("19121212", "DOE", "MRN99", "93.71"):
        assert secret not in dump, secret


def test_a_failed_batch_is_rolled_back_entirely(db: psycopg.Connection) -> None:
    w = Writer()
    good = records(P.event(PFX, "h", "gw1", "p1", kind="delivery_start", at=T0, seq=1))
    bad = records(P.event(PFX, "h", "gw1", "p1", kind="delivery_stop", at=T0, seq=2))
    db.execute("ALTER TABLE events ADD CONSTRAINT no_stop CHECK (kind <> 'delivery_stop')")
    db.commit()
    try:
        w.write(db, good + bad)
    except psycopg.errors.CheckViolation:
        pass
    else:
        raise AssertionError("the check constraint should have failed the batch")
    assert count(db, "events") == 0 and count(db, "gateways") == 0
    w.write(db, good)  # the writer forgot its caches: the gateway row is created again
    assert count(db, "events") == 1


def test_a_last_will_with_a_null_since_marks_the_gateway_offline_at_its_arrival(db: psycopg.Connection) -> None:
    """The gateway's will is written at connect time, so its ``since`` is null (docs/mqtt.md)."""
    will = json.loads(P.status(PFX, "h", "gw1", state="offline", session="s1", since=T0, ward="ICU3")[1])
    will.update(since=None, cause="will")
    topic = f"{PFX}/h/gw1/status"
    before = datetime.now(UTC)
    Writer().write(
        db,
        records(
            P.status(PFX, "h", "gw1", state="online", session="s1", since=T0, ward="ICU3"),
            (topic, json.dumps(will).encode(), True),
        ),
    )
    state, since = db.execute("SELECT state, state_since FROM gateways").fetchone()
    assert state == "offline" and since >= before


def test_a_message_twice_in_one_batch_is_written_once_and_rows_keep_arrival_order(db: psycopg.Connection) -> None:
    """Events and alarms go through a COPY stage: duplicates inside one COPY must still collapse
    on (gateway, message id, occurred_at), ids must follow arrival order, and the stage must be
    empty after the batch (a later batch never re-sends it)."""
    e1 = P.event(PFX, "h", "gw1", "p2", kind="delivery_start", at=T0 + timedelta(seconds=9), seq=1)
    e2 = P.event(PFX, "h", "gw1", "p1", kind="delivery_start", at=T0, seq=1)
    e3 = P.event(PFX, "h", "gw1", "p2", kind="delivery_stop", at=T0 + timedelta(seconds=1), seq=2)
    a1 = P.alarm(PFX, "h", "gw1", "p1", phase="onset", at=T0, seq=2, instance="a1")
    a2 = P.alarm(PFX, "h", "gw1", "p1", phase="end", at=T0 + timedelta(seconds=4), seq=3, instance="a1")
    w = Writer()
    w.write(db, records(e1, a1, e2, e1, a1, e3, a2))
    pumps_kinds = db.execute("SELECT pump, kind FROM events ORDER BY id").fetchall()
    assert pumps_kinds == [("p2", "delivery_start"), ("p1", "delivery_start"), ("p2", "delivery_stop")]
    assert db.execute("SELECT phase FROM alarms ORDER BY id").fetchall() == [("onset",), ("end",)]
    assert db.execute(
        "SELECT (SELECT count(*) FROM fleet_stage_events) + (SELECT count(*) FROM fleet_stage_alarms)"
    ).fetchone() == (0,)
    db.commit()
    w.write(db, records(P.event(PFX, "h", "gw1", "p1", kind="delivery_stop", at=T0 + timedelta(seconds=5), seq=4)))
    assert count(db, "events") == 4 and count(db, "alarms") == 2
