"""`pumpgw inventory` and `pumpgw audit` read the database without writing it, while a writer
holds it; the CSV imports into a CMMS-style PostgreSQL table without loss; operator actions on
the outbox leave audit rows."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from drivers.model import PumpIdentity
from gateway.audit import AuditTrail
from gateway.identity import IdentityRegistry
from gateway.outbox import Outbox
from tests.pg import pg_cluster

T0 = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def _config(tmp_path, db):
    path = tmp_path / "gw.toml"
    path.write_text(f"""
[gateway]
site = "s"
ward = "avd-41"
gateway_id = "gw1"
eui64 = "001BC50C0000AA01"
[outbox]
path = "{db}"
[[pumps]]
id = "bed03"
protocol = "alaris"
location = "Sal 12, säng 3"
asset_tag = "MT-004711"
link = {{ type = "serial", url = "/dev/null", baudrate = 38400 }}
[[pumps]]
id = "bed05"
protocol = "ne1000"
location = "bed 5"
link = {{ type = "serial", url = "/dev/null", baudrate = 19200 }}
[[pumps]]
id = "bed07"
protocol = "ne1000"
location = "bed 7, \\"isolation\\""
link = {{ type = "serial", url = "/dev/null", baudrate = 19200, address = 1 }}
""")
    return path


def _populate(db) -> None:
    reg = IdentityRegistry(AuditTrail.open(db), {"bed03": "MT-004711", "bed05": None})
    alaris = PumpIdentity("BD", "Asena GH", "8002-51740", "Asena Rev 2.1.5", "REGION-2026-11-02")
    reg.apply(reg.observe("bed03", alaris, T0, complete=True))
    reg.apply(reg.observe("bed05", PumpIdentity("New Era Pump Systems", "NE-1000", None, "3.928"), T0, complete=True))
    reg.apply(
        reg.observe("bed03", replace(alaris, firmware='Asena Rev 2.2,0 "beta"'), T0 + timedelta(days=1), complete=False)
    )
    reg.flush(force=True)
    reg.trail.close()


def _run(cmd, env, *args, check=True):
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, check=check, timeout=60)


def test_inventory_and_audit_read_while_a_writer_holds_the_database(tmp_path, pumpgw_cmd, subprocess_env):
    db = tmp_path / "gw.sqlite"
    _populate(db)
    config = _config(tmp_path, db)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a write transaction
    writer.execute("INSERT INTO lane_counters (lane) VALUES ('busy')")
    try:
        before = db.stat().st_mtime_ns
        rows = json.loads(_run(pumpgw_cmd, subprocess_env, "inventory", "--config", str(config), "--json").stdout)
        table = _run(pumpgw_cmd, subprocess_env, "inventory", "--config", str(config)).stdout
        verify = _run(pumpgw_cmd, subprocess_env, "audit", "--db", str(db), "verify", check=False)
        listed = _run(
            pumpgw_cmd,
            subprocess_env,
            "audit",
            "--db",
            str(db),
            "list",
            "--pump",
            "bed03",
            "--kind",
            "identity",
            "--since",
            "2026-03-01",
        ).stdout
        assert db.stat().st_mtime_ns == before  # nothing written
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert [r["pump_id"] for r in rows] == ["bed03", "bed05", "bed07"]
    assert rows[0]["asset_tag"] == "MT-004711" and rows[0]["firmware"] == 'Asena Rev 2.2,0 "beta"'
    assert rows[0]["ward"] == "avd-41" and rows[0]["bed"] == "Sal 12, säng 3"
    assert rows[2]["serial_number"] == "" and rows[2]["bed"] == 'bed 7, "isolation"'  # never identified: listed
    assert "MT-004711" in table and "8002-51740" in table
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "identity.registered" in listed and "identity.firmware_changed" in listed


def test_the_commands_never_create_a_missing_database(tmp_path, pumpgw_cmd, subprocess_env):
    missing = tmp_path / "nope.sqlite"
    for args in (("inventory", "--db", str(missing)), ("audit", "--db", str(missing), "verify")):
        result = _run(pumpgw_cmd, subprocess_env, *args, check=False)
        assert result.returncode == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not missing.exists()


CMMS_TABLE = """
CREATE TABLE cmms_asset (
    asset_tag text, serial_number text, model text, manufacturer text, firmware text,
    library_version text, ward text, bed text, last_seen timestamptz, pump_id text PRIMARY KEY,
    first_seen timestamptz, udi text
)"""


def test_inventory_csv_imports_into_a_postgresql_cmms_table_without_loss(tmp_path, pumpgw_cmd, subprocess_env):
    db = tmp_path / "data" / "gw.sqlite"
    db.parent.mkdir()
    _populate(db)
    config = _config(tmp_path / "data", db)
    text = _run(pumpgw_cmd, subprocess_env, "inventory", "--config", str(config), "--csv").stdout
    exported = list(csv.DictReader(io.StringIO(text)))
    with pg_cluster(tmp_path / "pg") as pg, psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(CMMS_TABLE)
        with conn.cursor() as cur:
            with cur.copy("COPY cmms_asset FROM STDIN WITH (FORMAT csv, HEADER true, NULL '')") as copy:
                copy.write(text.encode("utf-8"))
            cur.execute(
                "SELECT asset_tag, serial_number, model, manufacturer, firmware, library_version, ward, "
                "bed, last_seen, pump_id, first_seen, udi FROM cmms_asset ORDER BY pump_id"
            )
            back = cur.fetchall()
    assert len(back) == len(exported) == 3
    for row, original in zip(back, exported, strict=True):
        for name, value in zip(
            ("asset_tag", "serial_number", "model", "manufacturer", "firmware", "library_version", "ward", "bed"),
            row[:8],
            strict=True,
        ):
            assert (value or "") == original[name], name
        if original["last_seen"]:
            assert row[8] == datetime.fromisoformat(original["last_seen"])
    assert back[0][4] == 'Asena Rev 2.2,0 "beta"' and back[0][7] == "Sal 12, säng 3"


@pytest.mark.parametrize("action", ["requeue", "purge"])
def test_operator_outbox_actions_leave_an_audit_row(tmp_path, pumpgw_cmd, subprocess_env, action):
    db = tmp_path / "gw.sqlite"
    Outbox.open(db).close()
    conn = sqlite3.connect(db)
    state = "quarantined" if action == "requeue" else "expired"
    conn.execute(
        "INSERT INTO messages (lane, kind, control_id, payload, size, state, created_at, ttl_s, "
        "expires_at, state_at) VALUES ('ehr','pcd10','GW-000042',x'00',1,?,0,1,1,0)",
        (state,),
    )
    conn.commit()
    conn.close()
    args = ["--quarantined"] if action == "requeue" else ["--expired", "--older-than", "1s"]
    _run(pumpgw_cmd, subprocess_env, "outbox", "--db", str(db), action, *args, "--reason", "EHR fixed, INC-7")
    rows = json.loads(
        _run(pumpgw_cmd, subprocess_env, "audit", "--db", str(db), "list", "--kind", "operator", "--json").stdout
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["kind"] == f"operator.outbox_{action}" and row["actor"] not in ("", "pumpgw")
    assert row["detail"]["control_ids"] == ["GW-000042"] and row["detail"]["reason"] == "EHR fixed, INC-7"
    assert _run(pumpgw_cmd, subprocess_env, "audit", "--db", str(db), "verify").returncode == 0
