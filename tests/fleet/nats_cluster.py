"""A 3-node NATS cluster with JetStream and the MQTT listener, on loopback, in a temp dir.

NATS's MQTT support keeps sessions, retained messages and QoS 1 in-flight messages in
JetStream, replicated across the cluster; it speaks MQTT 3.1.1 only (the fleet's protocol).
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.ports import distinct_free_ports

NATS = "nats-server"


@dataclass
class NatsNode:
    name: str
    mqtt_port: int
    client_port: int
    cluster_port: int
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.mqtt_port


class NatsCluster:
    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        ports = iter(distinct_free_ports(3 * size))
        self.nodes = [NatsNode(f"n{i + 1}", next(ports), next(ports), next(ports)) for i in range(size)]

    def _conf(self, node: NatsNode) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes if n is not node)
        store = self.workdir / node.name
        store.mkdir(exist_ok=True)
        conf = self.workdir / f"{node.name}.conf"
        conf.write_text(
            f"server_name: {node.name}\nlisten: 127.0.0.1:{node.client_port}\n"
            f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 256MB }}\n'
            f"cluster {{ name: fleet, listen: 127.0.0.1:{node.cluster_port}, routes: [{routes}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{node.mqtt_port} }}\n"
        )
        return conf

    def start(self) -> None:
        for node in self.nodes:
            log = (self.workdir / f"{node.name}.log").open("ab")
            node.proc = subprocess.Popen([NATS, "-c", str(self._conf(node))], stdout=log, stderr=log)
        for node in self.nodes:
            self.wait_mqtt_ready(node)

    def wait_mqtt_ready(self, node: NatsNode, timeout: float = 45.0) -> None:
        """Until a persistent-session CONNECT succeeds (JetStream has a meta leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert node.proc is not None and node.proc.poll() is None, self.log_tail(node)
            try:
                socket.create_connection((node.host, node.mqtt_port), timeout=0.5).close()
            except OSError:
                time.sleep(0.1)
                continue
            client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"probe{uuid.uuid4().hex[:8]}",
                clean_session=True,
                protocol=MQTTProtocolVersion.MQTTv311,
            )
            try:
                client.connect(node.host, node.mqtt_port, 10)
                rc = None
                end = time.monotonic() + 5
                while rc is None and time.monotonic() < end:
                    client.loop(0.1)
                    if client.is_connected():
                        rc = 0
                if rc == 0:
                    client.disconnect()
                    return
            except OSError:
                pass
            finally:
                client.socket() and client.socket().close()  # type: ignore[union-attr]
            time.sleep(0.3)
        raise AssertionError(f"NATS node {node.name} MQTT not ready:\n{self.log_tail(node)}")

    def log_tail(self, node: NatsNode) -> str:
        return (self.workdir / f"{node.name}.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(5)
