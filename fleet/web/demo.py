"""``pumpgw fleet --demo``: a simulated region in the local PostgreSQL and Mosquitto, shown in the UI.

For a newcomer: no configuration. It checks that PostgreSQL (127.0.0.1:5432) and an MQTT
broker (127.0.0.1:1883) answer -- and if one does not, says which address failed and how to
start one, without a traceback. Then it (re)creates the database ``pumpgw_fleet_demo``, starts
the collector (part 1's, the one `pumpgw fleet run` uses), lets part 1's simulator publish two
weeks of a region (4 wards: a library release and its uptake, a swap, a firmware update, an
alarm storm, a pump that disappears, gateway alerts) and a second release still rolling out under its own topic prefix, keeps the
gateways' heartbeats going, and serves the web UI on http://127.0.0.1:8470/ with a one-time
admin password printed beside the URL. Ctrl-C stops everything in order.

The services' checks and cleaning are in :mod:`fleet.web.demo_services`, what is published in
:mod:`fleet.web.demo_region`; this module starts and stops the parts in order.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet.web.demo_services import (
    DEMO_CLIENT_ID,
    DEMO_DB,
    DEMO_PREFIX,
    PG_HINT,
    check_services,
    create_database,
    pg_address,
    reset_broker,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pg",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="demo: libpq DSN of a PostgreSQL server to create the demo database in",
    )
    p.add_argument("--broker", default="127.0.0.1:1883", help="demo: MQTT broker HOST:PORT")
    p.add_argument("--port", type=int, default=8470, help="demo: web UI port on 127.0.0.1")
    p.add_argument("--wards", type=int, default=4, help="demo: simulated ward gateways")
    p.add_argument("--pumps", type=int, default=8, help="demo: pumps per gateway")
    p.add_argument("--days", type=int, default=14, help="demo: days of simulated history (hourly steps)")


def run_demo(args: argparse.Namespace) -> int:
    problems = check_services(args.pg, args.broker, args.port)
    if problems:
        for line in problems:
            print(f"pumpgw fleet --demo: {line}", file=sys.stderr)
        return 1
    import psycopg

    try:
        dsn = create_database(args.pg)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        host, port = pg_address(args.pg)
        print(f"pumpgw fleet --demo: PostgreSQL at {host}:{port} refused the demo: {first}; {PG_HINT}", file=sys.stderr)
        return 1
    return _serve(args, dsn)


def _serve(args: argparse.Namespace, dsn: str) -> int:
    import uvicorn
    from psycopg_pool import ConnectionPool

    from fleet.collector import Collector
    from fleet.config import FleetSettings
    from fleet.db.connect import connect
    from fleet.db.migrations import migrate
    from fleet.sim.run import RegionRunner
    from fleet.sim.world import Region
    from fleet.web.auth import hash_password
    from fleet.web.demo_region import ROLLOUT_H, keep_alive, publish_history
    from fleet.web.mount import build_fleet_app
    from fleet.web.settings import UserEntry, WebSettings

    bhost, _, bport = args.broker.rpartition(":")
    cleared = reset_broker(bhost, int(bport))
    if cleared:
        print(f"cleared {cleared} retained topics of an earlier demo", flush=True)
    with connect(dsn) as conn:
        migrate(conn)
    settings = FleetSettings.model_validate(
        {
            "database": {"dsn": dsn},
            "mqtt": {"host": bhost, "port": int(bport), "client_id": DEMO_CLIENT_ID, "topic_prefix": DEMO_PREFIX},
        }
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        # SIGTERM/SIGINT set stop; uvicorn captures them while serving and re-raises them
        # after its graceful shutdown, which lands here too.
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    collector = Collector(settings)
    collector_thread = threading.Thread(target=collector.run, args=(stop,), name="fleet-demo-collector")
    collector_thread.start()
    # Hourly steps; two weeks by default, so "not seen for 7 days" has a pump to show.
    rounds = max(2, args.days) * 24
    # The scripted history ends 36 h ago; the last 36 h are a second release still rolling out.
    region = Region(
        args.wards,
        args.pumps,
        rounds=rounds,
        seed=22,
        prefix=DEMO_PREFIX,
        start=datetime.now(UTC) - timedelta(hours=rounds + ROLLOUT_H),
        activity=0.15,
    )
    runner = RegionRunner(bhost, int(bport), region, client_prefix=f"demo-{secrets.token_hex(3)}")
    password = secrets.token_urlsafe(9)
    web = WebSettings(
        port=args.port,
        users=[
            UserEntry(name="demo", role="admin", password_hash=hash_password(password)),
        ],
    )
    pool = ConnectionPool(dsn, min_size=1, max_size=8, open=True, kwargs={"options": "-c timezone=UTC"})
    heartbeat: threading.Thread | None = None
    try:
        runner.start()
        print(
            f"simulating {args.wards} ward gateways x {args.pumps} pumps, {rounds // 24} days of history ...",
            flush=True,
        )
        publish_history(runner, region, collector, rounds, stop)
        if stop.is_set():
            return 0
        heartbeat = threading.Thread(target=keep_alive, args=(runner, region, stop), name="fleet-demo-heartbeat")
        heartbeat.start()
        app = build_fleet_app(settings, web, pool)
        print(
            f"\nThe fleet UI: http://127.0.0.1:{args.port}/   user: demo   password: {password}\n"
            f"(database {DEMO_DB}, topics {DEMO_PREFIX}/#; Ctrl-C stops)",
            flush=True,
        )
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning"))
        server.run()  # returns on SIGINT/SIGTERM
    except TimeoutError as exc:
        print(f"pumpgw fleet --demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pumpgw fleet --demo: cannot serve on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        stop.set()
        if heartbeat is not None:
            heartbeat.join()
        runner.stop()
        collector_thread.join()
        pool.close()
    return 0


def main(args: Any) -> int:
    try:
        return run_demo(args)
    except KeyboardInterrupt:
        return 0
