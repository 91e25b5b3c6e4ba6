"""Gateway status that cannot lie, and bounded inbound MQTT, against a real Mosquitto.

Heartbeat and MQTT 5 message expiry on the retained status and availability; a gateway
SIGKILLed while a persistent broker is down stops looking online; pumps go offline with the
gateway; Maximum Packet Size and rebirth rate limit.
"""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.conftest import REPO
from tests.gateway.mqtt.conftest import Broker, snapshot
from tests.gateway.mqtt.scratch_outbox import scratch_outbox
from tests.gateway.mqtt.test_publisher import BASE, make_publisher, run_with, wait_for


class V5Subscriber:
    """An MQTT 5 client (test side, own thread) that also records message properties."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool, object]] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain), getattr(m.properties, "MessageExpiryInterval", None))
        )
        subscribed: queue.Queue[int] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, rc, p: subscribed.put(mid)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        subscribed.get(timeout=5)

    def retained_now(self, quiet_s: float = 0.5) -> dict[str, bytes]:
        """Retained messages delivered right after subscribing (topic -> payload)."""
        out: dict[str, bytes] = {}
        while True:
            try:
                t, p, r, _ = self.messages.get(timeout=quiet_s)
            except queue.Empty:
                return out
            if r:
                out[t] = p

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def kill_broker(broker: Broker) -> None:
    """SIGKILL: a crash or power loss, so the broker sends no will on the way down."""
    assert broker.proc is not None
    broker.proc.kill()
    broker.proc.wait(5)
    broker.proc = None
    broker.log.close()


def test_retained_status_carries_heartbeat_ward_and_expiry_and_is_refreshed(broker):
    q = scratch_outbox()
    sub = V5Subscriber(broker, f"{BASE}/#")

    async def body() -> None:
        pub.register_pumps(["bed07-a"])
        pub.update_state(snapshot("bed07-a"))
        births = []
        async with asyncio.timeout(20):
            while len(births) < 3:
                t, p, _r, expiry = await asyncio.to_thread(sub.messages.get, True, 10)
                if t == f"{BASE}/status":
                    births.append((json.loads(p), expiry))
        first, second, third = (b for b, _ in births)
        assert first["cause"] == "birth" and {second["cause"], third["cause"]} == {"heartbeat"}
        assert first["ward"] == "icu-3" and first["heartbeat_interval_s"] == 1
        assert first["since"] == second["since"]  # since = birth, heartbeat_at moves on
        stamps = [datetime.fromisoformat(b["heartbeat_at"]) for b in (first, second, third)]
        assert stamps == sorted(stamps) and stamps[0] < stamps[2]
        assert all(expiry is not None and expiry <= 3 for _, expiry in births)  # 1 s x 3

    pub = make_publisher(broker, q, heartbeat_interval_s=1, stale_after_intervals=3)
    pub.producer.ward = "icu-3"
    run_with(pub, body)
    sub.close()


def test_a_clean_stop_takes_every_pump_offline_with_the_gateway_since_the_stop(broker, subscribe):
    q = scratch_outbox()

    async def body() -> None:
        pub.register_pumps(["bed07-a", "bed08-a"])
        pub.update_state(snapshot("bed07-a"))
        await pub.wait_online()
        await wait_for(sub, f"{BASE}/pumps/bed07-a/availability", lambda d: d["availability"] == "online")

    sub = subscribe(broker, [f"{BASE}/#"])
    pub = make_publisher(broker, q)
    started = datetime.now().astimezone()
    run_with(pub, body)
    late = subscribe(broker, [f"{BASE}/#"])
    got = {t: json.loads(p) for t, p, r in late.drain() if r}
    status = got[f"{BASE}/status"]
    assert status["state"] == "offline" and status["cause"] == "stop"
    assert datetime.fromisoformat(status["since"]) > started
    for pump in ("bed07-a", "bed08-a"):
        assert got[f"{BASE}/pumps/{pump}/availability"]["availability"] == "offline"


def test_the_will_carries_no_connect_time_as_time_of_death(broker, subscribe, subprocess_env):
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gateway_proc.py")), broker.host, str(broker.port)],
        stdout=subprocess.PIPE,
        env=subprocess_env,
        cwd=REPO,
    )
    try:
        assert any(line.strip() == b"READY" for line in iter(proc.stdout.readline, b""))
        sub = subscribe(broker, [f"{BASE}/status"])
        online = json.loads(sub.next()[1])
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        will = json.loads(sub.next(timeout=5)[1])
        assert will["state"] == "offline" and will["cause"] == "will" and will["since"] is None
        assert will["session"] == online["session"] and online["since"] is not None
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_gateway_killed_while_the_persistent_broker_is_down_stops_looking_online(make_broker, subprocess_env):
    broker = make_broker(["persistence true", "autosave_interval 1"])
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gateway_proc.py")), broker.host, str(broker.port), "1", "8"],
        stdout=subprocess.PIPE,
        env=subprocess_env,
        cwd=REPO,
    )
    try:
        assert any(line.strip() == b"READY" for line in iter(proc.stdout.readline, b""))
        sub = V5Subscriber(broker, f"{BASE}/#")
        seen: dict[str, dict] = {}
        wanted = {
            f"{BASE}/status": ("state", "online"),
            f"{BASE}/pumps/bed07-a/availability": ("availability", "online"),
        }
        while any(seen.get(t, {}).get(k) != v for t, (k, v) in wanted.items()):  # both published
            t, p, _r, _e = sub.messages.get(timeout=20)
            if t in wanted:
                seen[t] = json.loads(p)
        sub.close()
        # Wait for an autosave after we saw the online state: the broker's file then holds it.
        db = broker.workdir / "db" / "mosquitto.db"
        saved_before = db.stat().st_mtime_ns if db.exists() else 0
        deadline = time.monotonic() + 10
        while (db.stat().st_mtime_ns if db.exists() else 0) == saved_before:
            assert time.monotonic() < deadline, "mosquitto never autosaved"
            time.sleep(0.05)
        kill_broker(broker)
        proc.send_signal(signal.SIGKILL)  # the gateway dies while the broker is down
        proc.wait(5)
        broker.start()
        # The restarted broker restored the dead gateway's "online" (the ghost) ...
        sub = V5Subscriber(broker, f"{BASE}/status")
        ghost = json.loads(sub.messages.get(timeout=5)[1])
        sub.close()
        assert ghost["state"] == "online"
        # ... and within stale_after_intervals (8) x heartbeat (1 s) the status and the pump
        # stop claiming "online"; before, both stayed online for ever.
        deadline = time.monotonic() + 30
        while True:
            sub = V5Subscriber(broker, f"{BASE}/#")
            now = sub.retained_now()
            sub.close()
            status = json.loads(now[f"{BASE}/status"]) if f"{BASE}/status" in now else None
            avail = now.get(f"{BASE}/pumps/bed07-a/availability")
            alive = (status is not None and status["state"] == "online") or (
                avail is not None and json.loads(avail)["availability"] == "online"
            )
            if not alive:
                break
            assert time.monotonic() < deadline, f"still online: {now}"
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_an_oversized_publish_on_the_rebirth_topic_never_reaches_the_gateway(broker, subscribe):
    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/status"])

    async def body() -> None:
        await pub.wait_online()
        big = b"x" * (64 << 20)  # 64 MiB: beyond the 1 MiB Maximum Packet Size we announced
        sub.client.publish(f"{BASE}/rebirth", big, qos=1).wait_for_publish(30)
        sub.client.publish(f"{BASE}/rebirth", b"x" * 2048, qos=1)  # within the packet size, not a rebirth
        sub.client.publish(f"{BASE}/rebirth", b"", qos=1)  # the genuine one, sent last
        async with asyncio.timeout(30):
            while pub.stats.rebirths < 1:
                await asyncio.sleep(0.02)
        assert pub.stats.inbound_refused == 1  # the 2 KiB one; the 64 MiB one never arrived
        assert pub.stats.rebirths == 1 and pub.stats.sessions == 1  # the session survived

    pub = make_publisher(broker, q, max_packet_bytes=1 << 20)
    run_with(pub, body, timeout=60)


def test_rebirth_requests_in_a_loop_are_coalesced_to_one_per_interval(broker, subscribe):
    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/status"])

    async def body() -> None:
        await pub.wait_online()
        for _ in range(20):
            sub.client.publish(f"{BASE}/rebirth", b"", qos=1)
        async with asyncio.timeout(20):
            while pub.stats.rebirths + pub.stats.rebirths_coalesced < 20:
                await asyncio.sleep(0.02)
            assert pub.stats.rebirths == 1 and pub.stats.rebirths_coalesced == 19
            while pub.stats.rebirths < 2:  # the coalesced ones: one more at the interval's end
                await asyncio.sleep(0.02)
        assert pub.stats.rebirths == 2

    pub = make_publisher(broker, q, rebirth_min_interval_s=5.0)  # all 20 arrive well within it
    run_with(pub, body)


def test_with_mqtt_3_1_1_an_oversized_inbound_message_is_dropped_before_any_handler_and_logged(broker, subscribe):
    """3.1.1 cannot announce a Maximum Packet Size: the broker delivers, the gateway drops it."""
    import structlog

    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/status"])

    async def body() -> None:
        await pub.wait_online()
        with structlog.testing.capture_logs() as logs:
            sub.client.publish(f"{BASE}/rebirth", b"x" * (2 << 20), qos=1)
            sub.client.publish(f"{BASE}/rebirth", b"", qos=1)  # the genuine one, sent last
            async with asyncio.timeout(30):
                while pub.stats.rebirths < 1:
                    await asyncio.sleep(0.02)
        refused = [e for e in logs if e["event"] == "mqtt.inbound_refused"]
        assert len(refused) == 1 and refused[0]["bytes"] == 2 << 20 and refused[0]["log_level"] == "warning"
        assert pub.stats.inbound_refused == 0  # never reached the publisher's handler

    pub = make_publisher(broker, q, protocol="3.1.1", max_packet_bytes=1 << 20)
    run_with(pub, body, timeout=60)
