"""The services the fleet demo needs: checked before it starts, and cleaned for a fresh region.

``pumpgw fleet --demo`` (:mod:`fleet.web.demo`) runs against the local PostgreSQL and MQTT
broker. :func:`check_services` says which address failed and how to start the service, without
a traceback; :func:`create_database` and :func:`reset_broker` remove what an earlier demo left
(its database, retained messages and persistent session), so the new history is what is shown.
"""

from __future__ import annotations

import socket
import threading
import time

DEMO_DB = "pumpgw_fleet_demo"
DEMO_PREFIX = "pumpgw-demo/v1"
DEMO_CLIENT_ID = "pumpgw-fleet-demo"

PG_HINT = (
    "start one: `sudo systemctl start postgresql` (Debian: `sudo apt-get install postgresql`); the demo "
    "connects as user 'postgres' with trust or peer-less local auth, or pass --pg 'host=... user=...'"
)
MQTT_HINT = (
    "start one: `sudo systemctl start mosquitto` or `mosquitto -p 1883` (Debian: `sudo apt-get install mosquitto`)"
)


def _tcp_ok(host: str, port: int) -> str | None:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return None
    except OSError as exc:
        return exc.strerror or str(exc)


def pg_address(dsn: str) -> tuple[str, int]:
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
    host, port = pg_address(pg_dsn)
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


def create_database(pg_dsn: str) -> str:
    """Drop and create the demo database (it holds only simulated data); its DSN."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(pg_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DEMO_DB}")
    info = conninfo_to_dict(pg_dsn)
    info["dbname"] = DEMO_DB
    return make_conninfo(**{k: str(v) for k, v in info.items()})


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
