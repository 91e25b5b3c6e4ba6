"""The region setup: a clustered broker. Gateways publish to one node of a 3-node NATS
JetStream cluster, the collector reads from another; a collector restart loses nothing."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest

from fleet.collector import Collector
from fleet.config import FleetSettings
from fleet.sim.run import RegionRunner
from fleet.sim.world import Region
from tests.fleet.nats_cluster import NATS, NatsCluster


def message_ids(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT message_id FROM events UNION ALL SELECT message_id FROM alarms")}


def run_collector(settings: FleetSettings, until: threading.Event) -> threading.Thread:
    collector = Collector(settings)
    t = threading.Thread(target=collector.run, args=(until,), name="nats-collector")
    t.start()
    assert collector.connected.wait(30), "collector did not subscribe on the NATS node"
    return t


@pytest.mark.slow
def test_gateways_on_one_nats_node_reach_the_collector_on_another_across_a_collector_restart(
    tmp_path: Path, dsn: str
) -> None:
    if shutil.which(NATS) is None:
        pytest.skip("nats-server is not installed")
    cluster = NatsCluster(tmp_path)
    try:
        cluster.start()
        n1, n2 = cluster.nodes[0], cluster.nodes[1]
        settings = FleetSettings.model_validate(
            {
                "database": {"dsn": dsn},
                "mqtt": {"host": n1.host, "port": n1.mqtt_port, "client_id": "fleet-nats"},
                "collector": {"batch_max": 100, "batch_wait_ms": 20},
            }
        )
        stop = threading.Event()
        t = run_collector(settings, stop)
        runner = RegionRunner(n2.host, n2.mqtt_port, Region(3, 4, rounds=20, seed=7))
        runner.start(timeout=30)
        runner.run(10)
        stop.set()  # the collector goes away mid-stream; its session stays in JetStream
        t.join(20)
        runner.run(10)
        assert runner.wait_acked(30)
        committed = {c["message_id"] for c in runner.committed()}
        stop = threading.Event()
        t = run_collector(settings, stop)
        deadline = time.monotonic() + 40
        while message_ids(dsn) != committed:
            assert time.monotonic() < deadline, f"{len(committed - message_ids(dsn))} messages missing"
            time.sleep(0.2)
        stop.set()
        t.join(20)
        runner.stop()
    finally:
        cluster.stop()
