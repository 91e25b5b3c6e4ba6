"""``pumpgw fleet --demo``: a simulated region in the local PostgreSQL and Mosquitto, shown in the UI.

For a newcomer: no configuration. It checks that PostgreSQL (127.0.0.1:5432) and an MQTT
broker (127.0.0.1:1883) answer -- and if one does not, says which address failed and how to
start one, without a traceback. Then it (re)creates the database ``pumpgw_fleet_demo``, starts
the collector (part 1's, the one `pumpgw fleet run` uses), lets part 1's simulator publish two
weeks of a region (4 wards: a library release and its uptake, a swap, a firmware update, an
alarm storm, a pump that disappears, gateway alerts) and a second release still rolling out under its own topic prefix, keeps the
gateways' heartbeats going, and serves the web UI on http://127.0.0.1:8470/ with a one-time
admin password printed beside the URL. Ctrl-C stops everything in order.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

DEMO_DB = "pumpgw_fleet_demo"
DEMO_PREFIX = "pumpgw-demo/v1"

PG_HINT = (
    "start one: `sudo systemctl start postgresql` (Debian: `sudo apt-get install postgresql`); the demo "
    "connects as user 'postgres' with trust or peer-less local auth, or pass --pg 'host=... user=...'"
)
MQTT_HINT = (
    "start one: `sudo systemctl start mosquitto` or `mosquitto -p 1883` (Debian: `sudo apt-get install mosquitto`)"
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


def _tcp_ok(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _pg_address(dsn: str) -> tuple[str, int]:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)


def check_services(pg_dsn: str, broker: str, web_port: int | None = None) -> list[str]:
    """One line per unreachable service, naming the address and how to start it (empty: all fine)."""
    problems = []
    if web_port is not None:
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", web_port))
        except OSError as exc:
            problems.append(f"cannot serve the UI on 127.0.0.1:{web_port} ({exc.strerror}); choose another --port")
    host, port = _pg_address(pg_dsn)
    why = _tcp_ok(host, port)
    if why is not None:
        problems.append(f"PostgreSQL is not reachable at {host}:{port} ({why}); {PG_HINT}")
    bhost, _, bport = broker.rpartition(":")
    if not bhost or not bport.isdigit():
        problems.append(f"--broker {broker!r} is not HOST:PORT")
    else:
        why = _tcp_ok(bhost, int(bport))
        if why is not None:
            problems.append(f"the MQTT broker is not reachable at {bhost}:{bport} ({why}); {MQTT_HINT}")
    return problems


def _create_database(pg_dsn: str) -> str:
    """Drop and create the demo database (it holds only simulated data); its DSN."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(pg_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DEMO_DB}")
    info = conninfo_to_dict(pg_dsn)
    info["dbname"] = DEMO_DB
    return make_conninfo(**{k: str(v) for k, v in info.items()})


DEMO_CLIENT_ID = "pumpgw-fleet-demo"


def reset_broker(host: str, port: int) -> int:
    """Start from a clean broker state: a previous demo's retained messages (status, inventory,
    the library release) would reach the new collector first and, being newer than the new
    simulated history, hide it; its persistent session would replay old messages. Discards the
    session (connect once with clean session) and clears every retained topic under the demo's
    prefix. Returns how many retained topics were cleared."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    retained: set[str] = set()
    quiet = threading.Event()
    last = [time.monotonic()]

    def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            retained.add(msg.topic)
        last[0] = time.monotonic()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=DEMO_CLIENT_ID, clean_session=True)
    client.on_message = on_message
    client.connect(host, port)
    client.subscribe(f"{DEMO_PREFIX}/#", qos=1)
    client.loop_start()
    try:
        # Retained messages come right after SUBACK; there is no end marker, so wait for a lull.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not quiet.wait(0.1):
            if time.monotonic() - last[0] > 0.7:
                quiet.set()
        for topic in sorted(retained):
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return len(retained)


ROLLOUT_H = 36
SECOND_RELEASE = "L9"


def rollout(region: Any, released_at: datetime) -> list[tuple[int, Any]]:
    """A second library release, ``ROLLOUT_H`` hours ago, that each ward takes up at its own
    pace (the first almost fully, the last barely), so the uptake page has curves below
    100 %, 80 % markers not yet reached and stragglers to chase."""
    from fleet.sim import payloads as P

    out: list[tuple[int, Any]] = [(0, P.release(region.prefix, version=SECOND_RELEASE, released_at=released_at))]
    for g, gw in enumerate(region.gateways):
        out.append(
            (
                g,
                P.gateway_library(
                    region.prefix,
                    gw.site,
                    gw.gateway,
                    version=SECOND_RELEASE,
                    applied_at=released_at + timedelta(minutes=5),
                ),
            )
        )
        share = (0.95, 0.8, 0.6, 0.3)[g % 4]
        for i, pump in enumerate(p for p in gw.pumps if not p.gone):
            if i >= round(share * len(gw.pumps)):
                break
            at = released_at + timedelta(hours=1 + (ROLLOUT_H - 2) * (i + region.rng.random()) / len(gw.pumps))
            previous = pump.ident()
            pump.library = SECOND_RELEASE
            out.append((g, region._event(gw, pump, "pump_library_changed", at, previous=previous)))
            out.append((g, region._state(gw, pump, at)))
    return out


def run_demo(args: argparse.Namespace) -> int:
    problems = check_services(args.pg, args.broker, args.port)
    if problems:
        for line in problems:
            print(f"pumpgw fleet --demo: {line}", file=sys.stderr)
        return 1
    import psycopg

    try:
        dsn = _create_database(args.pg)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        host, port = _pg_address(args.pg)
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
    from fleet.sim import payloads as P
    from fleet.sim.run import RegionRunner
    from fleet.sim.world import Region
    from fleet.web.auth import hash_password
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
        # Paced by the collector: a broker queues only so much for one subscriber (Mosquitto's
        # max_queued_messages defaults to 1000) and would drop the rest of a burst.
        sent = 0
        for k in range(1, rounds + 1):
            if stop.is_set():
                break
            sent += runner.step(k)
            deadline = time.monotonic() + 10
            while collector.stats.received < sent and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.01)
        for g, message in rollout(region, datetime.now(UTC) - timedelta(hours=ROLLOUT_H)):
            runner.publishers[g].publish(message)
        last = len(region.gateways) - 1
        for seq, name in enumerate(("outbox_budget_reached", "messages_expired"), start=1):
            runner.publishers[last].publish(
                P.alert(
                    DEMO_PREFIX,
                    region.gateways[last].site,
                    region.gateways[last].gateway,
                    name=name,
                    at=datetime.now(UTC) - timedelta(hours=seq),
                    seq=seq,
                )
            )
        now = datetime.now(UTC)
        for g, gw in enumerate(region.gateways):  # alive now, before the UI opens
            runner.publishers[g].publish(
                P.status(
                    DEMO_PREFIX,
                    gw.site,
                    gw.gateway,
                    state="online",
                    session=gw.session,
                    since=region.start,
                    ward=gw.ward,
                    heartbeat_at=now,
                )
            )
        runner.wait_acked(60)
        # Open the UI only once the collector has written what it got (bounded wait).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not stop.is_set():
            st = collector.stats
            if st.received >= sent and st.written >= st.received:
                break
            time.sleep(0.05)

        def beat() -> None:
            # The simulated gateways stay alive: a heartbeat per gateway every 30 s.
            while not stop.wait(30):
                now = datetime.now(UTC)
                for g, gw in enumerate(region.gateways):
                    runner.publishers[g].publish(
                        P.status(
                            DEMO_PREFIX,
                            gw.site,
                            gw.gateway,
                            state="online",
                            session=gw.session,
                            since=region.start,
                            ward=gw.ward,
                            heartbeat_at=now,
                        )
                    )

        if stop.is_set():
            return 0
        heartbeat = threading.Thread(target=beat, name="fleet-demo-heartbeat")
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
