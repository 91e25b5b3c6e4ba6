"""Web UI page response times for a 10,000-pump fleet, against baselines measured in the same run.

    .venv/bin/python bench/fleet_web_bench.py [--pumps 10000] [--requests 40] [--dsn DSN]

Fills a throw-away PostgreSQL (initdb/pg_ctl in a temp dir, like the tests; or ``--dsn`` of an
empty database) with the sample fleet (fleet/web/sample.py: 20 wards, pumps spread over 5
gateways per ward, a week of alarms, verdicts and infusion events per pump), serves the fleet
app (UI + API) with uvicorn on loopback, logs in, then times sequential GETs of every page:

* baseline ``static``: ``/healthz``, a constant response through the same server and guard-less route;
* baseline ``api``: the JSON report behind the page (``/api/NAME``), the same SQL without HTML;
* each page: full server-side render (SQL + Jinja2 + SVG).

Prints p50/p95 per route and each page's p95 as a ratio to both baselines. Goal: page p95
< 300 ms at 10,000 pumps on this machine.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx
import uvicorn
from psycopg_pool import ConnectionPool

from fleet.db.connect import connect
from fleet.web.auth import hash_password
from fleet.web.mount import build_fleet_app
from fleet.web.sample import Shape, fill
from fleet.web.settings import WebSettings

PAGES = [
    ("/", "/api/gateways"),
    ("/ward?name=W07", "/api/inventory?ward=W07"),
    ("/uptake", "/api/uptake"),
    ("/firmware", "/api/firmware"),
    ("/swaps", "/api/swaps"),
    ("/not-seen", "/api/not_seen"),
    ("/alarms", "/api/alarm_conditions?days=7"),
    ("/ders", "/api/limit_verdicts"),
    ("/pumps/region/w00-gw1/pump1", "/api/inventory?ward=W00"),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    client.get(path)  # warm-up (plans, templates)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code}: {r.text[:200]}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pumps", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--dsn", help="an empty database to fill (default: a throw-away cluster)")
    args = ap.parse_args()

    pg = None
    dsn = args.dsn
    if dsn is None:
        from tests.fleet.pg import Postgres

        pg = Postgres(Path(tempfile.mkdtemp(prefix="pumpgw-web-bench-")))
        pg.init()
        pg.start()
        dsn = pg.new_database()
    try:
        wards = tuple(f"W{i:02d}" for i in range(20))
        per_gateway = max(1, args.pumps // (len(wards) * 5))
        t0 = time.perf_counter()
        with connect(dsn) as conn:
            fill(
                conn,
                shape=Shape(
                    wards=wards,
                    gateways_per_ward=5,
                    pumps_per_gateway=per_gateway,
                    alarms_per_pump=6,
                    verdicts_per_pump=4,
                ),
            )
            conn.commit()
            pumps = conn.execute("SELECT count(*) FROM pumps").fetchone()[0]
            alarms = conn.execute("SELECT count(*) FROM alarms").fetchone()[0]
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        print(f"sample fleet: {pumps} pumps, {alarms} alarms, {events} events in {time.perf_counter() - t0:.1f} s")

        settings = WebSettings(
            session_secret="b" * 40,
            users=[
                {
                    "name": "bench",
                    "role": "admin",  # type: ignore[list-item]
                    "password_hash": hash_password("bench-pass"),
                }
            ],
        )
        pool = ConnectionPool(dsn, min_size=2, max_size=8, open=True, kwargs={"options": "-c timezone=UTC"})
        server = uvicorn.Server(
            uvicorn.Config(build_fleet_app(None, settings, pool), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
                client.post("/login", data={"username": "bench", "password": "bench-pass", "csrf_token": token})
                static = timed(client, "/healthz", args.requests)
                s95 = percentile(static, 0.95)
                print(f"\n{'route':34} {'p50 ms':>8} {'p95 ms':>8}  {'p95 / static':>12}  {'p95 / api':>9}")
                print(f"{'/healthz (baseline: static)':34} {statistics.median(static):8.1f} {s95:8.1f}")
                worst = 0.0
                for page, api in PAGES:
                    a = timed(client, api, args.requests)
                    p = timed(client, page, args.requests)
                    a95, p95 = percentile(a, 0.95), percentile(p, 0.95)
                    worst = max(worst, p95)
                    print(f"{api + ' (baseline: api)':34} {statistics.median(a):8.1f} {a95:8.1f}  {a95 / s95:12.1f}")
                    print(f"{page:34} {statistics.median(p):8.1f} {p95:8.1f}  {p95 / s95:12.1f}  {p95 / a95:9.2f}")
                print(
                    f"\nworst page p95: {worst:.0f} ms at {pumps} pumps (goal < 300 ms): "
                    f"{'OK' if worst < 300 else 'ABOVE GOAL'}"
                )
        finally:
            server.should_exit = True
            thread.join(10)
            pool.close()
    finally:
        if pg is not None:
            pg.stop("immediate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
