"""Fixtures: a real Mosquitto per test on a free loopback port, and a paho subscriber.

The broker can be stopped and started again on the same port (broker outage tests).
Persistence is off unless a test asks for it (it then documents why).
"""

from __future__ import annotations

import getpass
import queue
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from drivers.model import Alarm, ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity
from gateway.config.model import MqttConfig, RetryPolicy
from gateway.events.model import EventKind, PumpEvent
from tests.ports import free_port

MOSQUITTO = "/usr/sbin/mosquitto"


@dataclass
class Broker:
    workdir: Path
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        # Run as ourselves: as root, mosquitto would switch to user "mosquitto", which cannot
        # write its persistence file into tmp_path.
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr", "log_type all", f"user {getpass.getuser()}"]
        if not any(line.startswith("allow_anonymous") for line in self.extra):
            lines.append("allow_anonymous true")
        if "persistence true" in self.extra:
            (self.workdir / "db").mkdir(exist_ok=True)
            lines.append(f"persistence_location {self.workdir / 'db'}/")
        else:
            lines.append("persistence false")
        conf.write_text("\n".join(lines + self.extra) + "\n")
        self.log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.workdir / 'mosquitto.log').read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None
        self.log.close()

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(1)  # SIGHUP: re-read password file and ACLs


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed at /usr/sbin/mosquitto")
    brokers: list[Broker] = []

    def make(extra: list[str] | None = None, start: bool = True) -> Broker:
        b = Broker(tmp_path / f"broker{len(brokers)}", list(extra or []))
        b.workdir.mkdir()
        brokers.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in brokers:
        if b.proc is not None:
            b.stop()


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker()


class Subscriber:
    """A paho client in its own thread (test side only) collecting (topic, payload, retain)."""

    def __init__(self, broker: Broker, topics: list[str], *, client_id: str = "", clean: bool = True) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311, clean_session=clean
        )
        self.history: list[tuple[str, bytes, bool]] = []  # everything received, consumed or not
        self.client.on_message = self._on_message
        self.subscribed = queue.Queue[int]()
        self.client.on_subscribe = lambda c, u, mid, rc, p: self.subscribed.put(mid)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        self.subscribed.get(timeout=5)

    def _on_message(self, _client: object, _userdata: object, m: paho.MQTTMessage) -> None:
        msg = (m.topic, bytes(m.payload), bool(m.retain))
        self.history.append(msg)
        self.messages.put(msg)

    def next(self, timeout: float = 10.0) -> tuple[str, bytes, bool]:
        return self.messages.get(timeout=timeout)

    def wait_for(self, predicate: Callable[[str, bytes, bool], bool], timeout: float = 10.0) -> tuple[str, bytes, bool]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("expected MQTT message did not arrive")
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                raise AssertionError("expected MQTT message did not arrive") from None
            if predicate(*msg):
                return msg

    def drain(self, quiet_s: float = 0.3) -> list[tuple[str, bytes, bool]]:
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=quiet_s))
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    subs: list[Subscriber] = []

    def make(broker: Broker, topics: list[str], **kw: object) -> Subscriber:
        s = Subscriber(broker, topics, **kw)  # type: ignore[arg-type]
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


def mqtt_config(broker: Broker, **overrides: object) -> MqttConfig:
    base: dict[str, object] = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "keepalive_s": 5,
        "connect_timeout_s": 3.0,
        "retry": RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.4),
    }
    base.update(overrides)
    return MqttConfig(**base)  # type: ignore[arg-type]


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def snapshot(pump_id: str = "bed07-a", rate: str = "15.4", *, at: datetime = T0) -> PumpSnapshot:
    return PumpSnapshot(
        pump_id=pump_id,
        identity=PumpIdentity("New Era", "NE-1000", serial_number="SN123", firmware="3.928", drug_library_version="L7"),
        channels=(
            ChannelSnapshot(
                "1",
                ChannelState.INFUSING,
                rate=Quantity(Decimal(rate), "mL/h"),
                vtbi=Quantity(Decimal("250"), "mL"),
                drug="heparin",
            ),
        ),
        received_at=at,
        raw_status="S:PATIENT DOE",
    )


OCCLUSION = Alarm("OCC", "occlusion", "Occlusion downstream")


def event(n: int, *, alarm: bool = False, pump_id: str = "bed07-a") -> PumpEvent:
    at = T0.replace(second=n % 60, minute=n // 60 % 60)
    if alarm:
        return PumpEvent(
            EventKind.ALARM_ONSET,
            pump_id,
            at,
            channel_id="1",
            alarm=OCCLUSION,
            alert_instance_id=f"a{n}",
            detail={"seq": str(n)},
        )
    return PumpEvent(EventKind.DELIVERY_START, pump_id, at, channel_id="1", detail={"seq": str(n)})
