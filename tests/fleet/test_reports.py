"""Reports over a database filled by a simulated region (the scripted happenings are known)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

with warnings.catch_warnings():  # starlette 1.x nudges towards httpx2; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from fleet import reports as R
from fleet.db.writer import Writer
from fleet.http.app import build_app
from fleet.ingest.parse import parse_message
from fleet.sim.world import Region

ROUNDS = 40
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def region_db(db: psycopg.Connection) -> psycopg.Connection:
    region = Region(3, 4, rounds=ROUNDS, seed=2, start=NOW - timedelta(hours=ROUNDS))
    msgs = [m for g in range(3) for m in region.birth(g)]
    for k in range(1, ROUNDS + 1):
        msgs += [m for _, m in region.step(k)]
    records = [r for t, p, _ in msgs if (r := parse_message("pumpgw/v1", t, p)) is not None]
    Writer().write(db, records)
    db.commit()
    return db


def test_inventory_lists_every_pump_with_its_cmms_columns(region_db: psycopg.Connection) -> None:
    rows = R.inventory(region_db)
    assert len(rows) == 12
    assert {r.ward for r in rows} == {"ward-000", "ward-001", "ward-002"}
    assert all(r.asset_tag and r.serial_number and r.manufacturer and r.bed for r in rows)
    assert len(R.inventory(region_db, ward="ward-001")) == 4


def test_uptake_reaches_100_percent_in_a_ward_whose_pumps_all_took_the_release(region_db: psycopg.Connection) -> None:
    rows = {r.ward: r for r in R.uptake(region_db)}
    w0 = rows["ward-000"]
    assert w0.version == "L8" and w0.pumps == 4 and w0.on_version == 4 and w0.share == 1.0
    assert w0.reached_80_at is not None and w0.reached_100_at is not None
    assert 0 <= w0.hours_to_80 <= w0.hours_to_100 <= ROUNDS  # type: ignore[operator]
    timeline = [p for p in R.uptake_timeline(region_db, step_hours=4, until=NOW) if p.ward == "ward-000"]
    shares = [p.share for p in timeline]
    assert shares == sorted(shares) and shares[-1] == 1.0 and shares[0] < 1.0


def test_firmware_spread_shows_the_updated_model_on_its_new_firmware(region_db: psycopg.Connection) -> None:
    rows = R.firmware_spread(region_db)
    ne = [r for r in rows if r.model == "NE-1000"]
    assert [(r.firmware, r.share_of_model) for r in ne] == [("3.10", 1.0)]
    assert sum(r.pumps for r in rows) == 12


def test_swaps_report_the_swapped_device_with_its_previous_serial(region_db: psycopg.Connection) -> None:
    rows = R.swaps(region_db, days=30, now=NOW)
    assert [(r.gateway, r.pump, r.kind) for r in rows] == [("gw000", "p00", "device_swapped")]
    assert rows[0].serial_number == rows[0].previous_serial + "X"  # type: ignore[operator]


def test_not_seen_lists_exactly_the_pump_that_disappeared(region_db: psycopg.Connection) -> None:
    rows = R.not_seen(region_db, days=0.5, now=NOW)
    assert [(r.gateway, r.pump) for r in rows] == [("gw001", "p03")]
    assert rows[0].days_unseen and rows[0].days_unseen > 0.5
    assert R.not_seen(region_db, days=30, now=NOW) == []


def test_alarm_load_puts_the_storm_ward_first(region_db: psycopg.Connection) -> None:
    rows = R.alarm_load(region_db, days=30, now=NOW)
    assert rows[0].ward == "ward-002" and rows[0].onsets >= 1 and rows[0].alarm_seconds > 0
    conditions = R.alarm_conditions(region_db, days=30, now=NOW)
    storm = [c for c in conditions if c.ward == "ward-002"]
    assert storm[0].condition == "occlusion"


def test_ders_use_separates_library_drugs_from_basic_infusions(region_db: psycopg.Connection) -> None:
    rows = R.ders_use(region_db, days=30, now=NOW)
    basic = [r for r in rows if r.drug is None]
    library = [r for r in rows if r.drug is not None]
    assert basic and all(r.library_starts == 0 and r.basic_starts > 0 for r in basic)
    assert library and all(r.basic_starts == 0 and r.library_share == 1.0 for r in library)
    verdicts = R.limit_verdicts(region_db, days=30, now=NOW)
    assert {v.verdict for v in verdicts} >= {"within_limits"}
    assert all(v.drug for v in verdicts)


def test_gateways_report_health_and_library_in_force(region_db: psycopg.Connection) -> None:
    rows = R.gateways(region_db, now=NOW)
    assert [(r.gateway, r.state, r.library_version, r.pumps) for r in rows] == [
        (f"gw00{g}", "online", "L8", 4) for g in range(3)
    ]
    assert all(r.outbox_depth == 0 for r in rows)
    # The last heartbeat (every 6 h of the simulation) was 4 h before NOW, at a 60 s interval.
    assert all(r.stale for r in rows)
    assert not any(r.stale for r in R.gateways(region_db, now=NOW - timedelta(hours=4) + timedelta(minutes=1)))


def test_the_api_serves_every_report_as_json_and_csv(region_db: psycopg.Connection, dsn: str) -> None:
    client = TestClient(build_app(None, dsn))
    listing = client.get("/api").json()["reports"]
    assert {r["name"] for r in listing} == set(R.REPORTS)
    for name in R.REPORTS:
        assert client.get(f"/api/{name}").status_code == 200, name
        assert client.get(f"/api/{name}.csv").status_code == 200, name
    inv = client.get("/api/inventory.csv")
    lines = inv.text.strip().splitlines()
    assert inv.headers["content-type"].startswith("text/csv") and len(lines) == 13
    assert lines[0].startswith("site,gateway,ward,pump,bed,asset_tag")
    assert len(client.get("/api/inventory", params={"ward": "ward-000"}).json()["rows"]) == 4


def test_the_api_names_a_bad_parameter_and_an_unknown_report(dsn: str) -> None:
    client = TestClient(build_app(None, dsn))
    bad = client.get("/api/not_seen", params={"days": "soon"})
    assert bad.status_code == 400 and "days" in bad.json()["error"]
    assert client.get("/api/not_seen", params={"colour": "red"}).status_code == 400
    assert client.get("/api/nope").status_code == 404
    assert client.get("/api/health").json() == {"database": "ok"}


def test_the_api_answers_503_not_a_traceback_when_the_database_is_unreachable() -> None:
    client = TestClient(build_app(None, "host=127.0.0.1 port=1 dbname=x connect_timeout=1"))
    r = client.get("/api/inventory")
    assert r.status_code == 503 and "database unavailable" in r.json()["error"]
