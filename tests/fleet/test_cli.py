"""``pumpgw fleet ...`` as an operator runs it: real subprocesses, real broker and database."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PUMPGW = [sys.executable, "-c", "from gateway.cli import main; raise SystemExit(main())"]


def pumpgw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PUMPGW, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_report_uptake_json_answers_from_a_database_filled_by_simulated_gateways(
    make_broker, dsn: str, tmp_path: Path
) -> None:
    broker = make_broker(["max_queued_messages 0"])
    http_port = free_port()
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[database]\ndsn = "{dsn}"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'client_id = "fleet-cli"\n[http]\nport = {http_port}\n'
    )
    log = (tmp_path / "run.log").open("w")
    service = subprocess.Popen(
        [*PUMPGW, "fleet", "run", "--config", str(config)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while "subscribed" not in (tmp_path / "run.log").read_text():
            assert time.monotonic() < deadline and service.poll() is None, (tmp_path / "run.log").read_text()
            time.sleep(0.05)
        sim = pumpgw(
            "fleet",
            "simulate",
            "--broker",
            f"{broker.host}:{broker.port}",
            "--gateways",
            "3",
            "--pumps",
            "4",
            "--rounds",
            "30",
        )
        assert sim.returncode == 0, sim.stderr
        deadline = time.monotonic() + 30
        while True:
            with psycopg.connect(dsn) as conn:
                n = conn.execute("SELECT count(*) FROM gateways WHERE library_version = 'L8'").fetchone()[0]  # type: ignore[index]
            if n == 3:
                break
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.1)
        # The same process serves the API.
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/gateways", timeout=10) as resp:
            assert len(json.loads(resp.read())["rows"]) == 3
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0  # orderly stop
    out = pumpgw("fleet", "report", "uptake", "--json", "--config", str(config))
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["ward"] for r in rows} == {"ward-000", "ward-001", "ward-002"}
    assert all(r["version"] == "L8" and r["pumps"] == 4 and 0 < r["share"] <= 1 for r in rows)
    csv = pumpgw("fleet", "report", "inventory", "--csv", "--dsn", dsn)
    assert csv.returncode == 0 and len(csv.stdout.strip().splitlines()) == 13


def test_migrate_is_idempotent(postgres) -> None:  # type: ignore[no-untyped-def]
    url = postgres.new_database()
    first = pumpgw("fleet", "migrate", "--dsn", url)
    assert first.returncode == 0 and "applied: [1]" in first.stdout
    again = pumpgw("fleet", "migrate", "--dsn", url)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_operator_errors_are_one_line_without_a_traceback(tmp_path: Path, dsn: str) -> None:
    bad = tmp_path / "fleet.toml"
    bad.write_text("[mqtt]\nprot = 1883\n")
    for args, expected in (
        (("fleet", "run", "--config", str(bad)), "mqtt.prot"),
        (("fleet", "run", "--config", str(tmp_path / "missing.toml")), "cannot read"),
        (("fleet", "report", "uptake", "--dsn", "host=127.0.0.1 port=1 dbname=x"), "cannot connect to PostgreSQL"),
        (("fleet", "report", "nope", "--dsn", dsn), "no report named 'nope'"),
        (("fleet", "report", "not_seen", "--param", "days=soon", "--dsn", dsn), "must be a number"),
    ):
        r = pumpgw(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert expected in r.stderr and "Traceback" not in r.stderr, r.stderr
