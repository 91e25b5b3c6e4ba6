"""The collector end to end: simulated gateways -> real Mosquitto -> collector -> real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from fleet.collector import Collector
from fleet.config import FleetSettings
from fleet.reports import uptake
from fleet.sim.run import RegionRunner
from fleet.sim.world import Region

BROKER_EXTRA = ["max_queued_messages 0", "max_inflight_messages 200"]


def settings(broker, dsn: str, **mqtt: object) -> FleetSettings:  # type: ignore[no-untyped-def]
    return FleetSettings.model_validate(
        {
            "database": {"dsn": dsn},
            "mqtt": {"host": broker.host, "port": broker.port, "client_id": "fleet-test", **mqtt},
            "collector": {"batch_max": 200, "batch_wait_ms": 20},
        }
    )


@contextmanager
def running(collector: Collector) -> Iterator[Collector]:
    stop = threading.Event()
    t = threading.Thread(target=collector.run, args=(stop,), name="test-collector")
    t.start()
    try:
        assert collector.connected.wait(10), "collector did not connect"
        yield collector
    finally:
        stop.set()
        t.join(15)
        assert not t.is_alive()


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def rows(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def test_every_event_and_alarm_the_gateways_committed_is_stored_once(make_broker, dsn: str) -> None:
    broker = make_broker(BROKER_EXTRA)
    region = Region(4, 6, rounds=30, seed=3)
    runner = RegionRunner(broker.host, broker.port, region)
    with running(Collector(settings(broker, dsn))):
        runner.start()
        runner.run(30)
        assert runner.wait_acked(30)
        committed = runner.committed()
        wait_until(
            lambda: (
                rows(
                    dsn,
                    "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM alarms)"
                    " + (SELECT count(*) FROM gateway_alerts)",
                )[0][0]
                >= len(committed)
            )
        )
    runner.stop()
    stored = {r[0] for r in rows(dsn, "SELECT message_id FROM events UNION ALL SELECT message_id FROM alarms")}
    assert stored == {c["message_id"] for c in committed}
    assert rows(dsn, "SELECT count(*) FROM rejected_messages")[0][0] == 0
    # The release happened at 20 %: every ward has an uptake row for L8 with some pumps on it.
    with psycopg.connect(dsn) as conn:
        report = uptake(conn)
    assert {r.ward for r in report} == {f"ward-{g:03d}" for g in range(4)}
    assert all(r.version == "L8" and r.on_version > 0 for r in report)


def test_messages_arriving_while_the_collector_is_away_are_collected_after_its_restart(make_broker, dsn: str) -> None:
    broker = make_broker(BROKER_EXTRA)
    region = Region(2, 4, rounds=20, seed=5)
    runner = RegionRunner(broker.host, broker.port, region)
    with running(Collector(settings(broker, dsn))):
        pass  # first run creates the persistent session
    runner.start()
    runner.run(20)
    assert runner.wait_acked(30)
    committed = {c["message_id"] for c in runner.committed()}
    runner.stop()
    with running(Collector(settings(broker, dsn))):
        wait_until(
            lambda: (
                len({r[0] for r in rows(dsn, "SELECT message_id FROM events UNION ALL SELECT message_id FROM alarms")})
                >= len(committed)
            )
        )
    assert {
        r[0] for r in rows(dsn, "SELECT message_id FROM events UNION ALL SELECT message_id FROM alarms")
    } == committed


def test_a_malformed_message_is_recorded_as_rejected_and_does_not_stop_collection(make_broker, dsn: str) -> None:
    import paho.mqtt.publish as publish

    broker = make_broker(BROKER_EXTRA)
    with running(Collector(settings(broker, dsn))) as c:
        publish.single("pumpgw/v1/h/gw1/pumps/p1/events", b"{not json", qos=1, hostname=broker.host, port=broker.port)
        publish.single(
            "pumpgw/v1/h/gw1/pumps/p1/events",
            b'{"schema_version": 9, "message_id": "x"}',
            qos=1,
            hostname=broker.host,
            port=broker.port,
        )
        wait_until(lambda: c.stats.rejected >= 2)
    reasons = [r[0] for r in rows(dsn, "SELECT reason FROM rejected_messages ORDER BY id")]
    assert "not JSON" in reasons[0] and "schema_version 9" in reasons[1]


def test_two_instances_sharing_a_subscription_store_every_message_once(make_broker, dsn: str) -> None:
    broker = make_broker(BROKER_EXTRA)
    region = Region(4, 4, rounds=20, seed=9)
    runner = RegionRunner(broker.host, broker.port, region)
    a = Collector(settings(broker, dsn, client_id="fleet-a", shared_group="fleet"))
    b = Collector(settings(broker, dsn, client_id="fleet-b", shared_group="fleet"))
    with running(a), running(b):
        runner.start()
        runner.run(20)
        assert runner.wait_acked(30)
        committed = {c["message_id"] for c in runner.committed()}
        wait_until(
            lambda: (
                len(rows(dsn, "SELECT message_id FROM events UNION ALL SELECT message_id FROM alarms"))
                >= len(committed)
            )
        )
        assert a.stats.written > 0 and b.stats.written > 0  # the broker shared the load ...
        published = sum(p.published + len(p.births) for p in runner.publishers)
        assert a.stats.received + b.stats.received < 1.2 * published  # ... instead of copying it
    runner.stop()
    stored = [r[0] for r in rows(dsn, "SELECT message_id FROM events UNION ALL SELECT message_id FROM alarms")]
    assert sorted(stored) == sorted(committed)


def test_instances_partitioned_by_site_each_collect_only_their_sites(make_broker, dsn: str) -> None:
    broker = make_broker(BROKER_EXTRA)
    north = RegionRunner(broker.host, broker.port, Region(2, 3, rounds=10, seed=1, site="north"), client_prefix="n")
    south = RegionRunner(broker.host, broker.port, Region(2, 3, rounds=10, seed=2, site="south"), client_prefix="s")
    only_north = Collector(settings(broker, dsn, client_id="fleet-north", sites=["north"]))
    with running(only_north):
        for r in (north, south):
            r.start()
            r.run(10)
            assert r.wait_acked(30)
        want = {c["message_id"] for c in north.committed()}
        wait_until(
            lambda: (
                {r[0] for r in rows(dsn, "SELECT message_id FROM events UNION ALL SELECT message_id FROM alarms")}
                >= want
            )
        )
    for r in (north, south):
        r.stop()
    assert {r[0] for r in rows(dsn, "SELECT DISTINCT site FROM gateways")} == {"north"}
