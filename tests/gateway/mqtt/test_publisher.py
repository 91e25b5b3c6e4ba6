"""The MQTT sender against a real Mosquitto: retained state, durable events, outages, rebirth."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable

from gateway.mqtt import MqttPublisher
from gateway.mqtt.envelope import encode_envelope
from tests.gateway.mqtt.conftest import Broker, Subscriber, event, mqtt_config, snapshot
from tests.gateway.mqtt.scratch_outbox import ScratchOutbox, scratch_outbox

# The issue asks for a 30 s outage; the default run uses 5 s to keep the suite fast.
BROKER_DOWN_S = float(os.environ.get("PUMPGW_TEST_BROKER_DOWN_S", "5"))
BASE = "pumpgw/v1/site1/gw1"


def make_publisher(broker: Broker, q: ScratchOutbox, **overrides: object) -> MqttPublisher:
    return MqttPublisher(
        mqtt_config(broker, **overrides), site="site1", gateway_id="gw1", outbox=q, version="1.2.3", config_hash="cafe"
    )


def run_with(pub: MqttPublisher, body: Callable[[], Awaitable[None]], timeout: float = 40.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(timeout), asyncio.TaskGroup() as tg:
            tg.create_task(pub.run(), name="publisher")
            try:
                await body()
            finally:
                pub.stop()

    asyncio.run(main())


async def wait_for(sub: Subscriber, topic: str, pred: Callable[[dict], bool] = lambda d: True, timeout: float = 10.0):
    def match(t: str, p: bytes, r: bool) -> bool:
        return t == topic and bool(p) and pred(json.loads(p))

    t, p, r = await asyncio.to_thread(sub.wait_for, match, timeout)
    return json.loads(p), r


async def collect(sub: Subscriber, topics: set[str], timeout: float = 10.0) -> dict[str, tuple[dict, bool]]:
    """The first message of each topic in ``topics`` (others are skipped)."""
    got: dict[str, tuple[dict, bool]] = {}
    async with asyncio.timeout(timeout):
        while not topics <= set(got):
            t, p, r = await asyncio.to_thread(sub.next, timeout)
            if t in topics and t not in got:
                got[t] = (json.loads(p), r)
    return got


def test_birth_then_retained_state_availability_and_inventory_reach_a_late_subscriber(broker, subscribe):
    q = scratch_outbox()

    async def body() -> None:
        pub.register_pumps(["bed07-a", "bed08-b"])
        pub.update_state(snapshot("bed07-a", "15.4"))
        await pub.wait_online()
        await wait_for(early, f"{BASE}/pumps/bed07-a/state")
        late = await asyncio.to_thread(subscribe, broker, [f"{BASE}/#"])
        names = [
            "status",
            "inventory",
            *(f"pumps/{p}/{leaf}" for p in ("bed07-a", "bed08-b") for leaf in ("availability",)),
            "pumps/bed07-a/state",
        ]
        got = await collect(late, {f"{BASE}/{n}" for n in names})
        assert all(retained for _, retained in got.values())
        status = got[f"{BASE}/status"][0]
        assert status["state"] == "online"
        assert (status["version"], status["config_hash"], status["schema_version"]) == ("1.2.3", "cafe", 1)
        state = got[f"{BASE}/pumps/bed07-a/state"][0]
        assert state["channels"][0]["rate"] == {"value": "15.4", "unit": "mL/h"}
        assert "raw_status" not in state and "PATIENT" not in json.dumps(state)
        avail = {p: got[f"{BASE}/pumps/{p}/availability"][0]["availability"] for p in ("bed07-a", "bed08-b")}
        assert avail == {"bed07-a": "online", "bed08-b": "offline"}
        inv = got[f"{BASE}/inventory"][0]
        assert [(p["pump"], p["firmware"]) for p in inv["pumps"]] == [("bed07-a", "3.928"), ("bed08-b", None)]

    pub = make_publisher(broker, q)
    early = subscribe(broker, [f"{BASE}/#"])
    run_with(pub, body)


def test_events_and_alarms_arrive_in_order_on_their_topics_and_leave_the_queue_after_puback(broker, subscribe):
    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/pumps/+/events", f"{BASE}/pumps/+/alarms"])

    async def body() -> None:
        for n in range(30):
            await pub.enqueue_event(event(n, alarm=n % 3 == 0))
        await pub.wait_online()
        got = []
        while len(got) < 30:
            t, p, r = await asyncio.to_thread(sub.next)
            assert not r
            got.append((t.rsplit("/", 1)[1], int(json.loads(p)["detail"]["seq"])))
        alarms = [n for kind, n in got if kind == "alarms"]
        events = [n for kind, n in got if kind == "events"]
        assert alarms == [n for n in range(30) if n % 3 == 0]
        assert events == [n for n in range(30) if n % 3 != 0]
        for _ in range(100):
            if q.pending() == 0:
                break
            await asyncio.sleep(0.02)
        assert q.pending() == 0 and sorted(q.delivered) == list(range(1, 31))

    pub = make_publisher(broker, q)
    run_with(pub, body)


def test_a_corrupt_queued_message_is_quarantined_and_the_lane_continues(broker, subscribe):
    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/pumps/+/events"])

    async def body() -> None:
        await q.enqueue(lane="mqtt-events", kind="mqtt-event", control_id="x", payload=b"no separator", ttl_s=60)
        await pub.enqueue_event(event(1))
        payload, _ = await wait_for(sub, f"{BASE}/pumps/bed07-a/events")
        assert payload["detail"]["seq"] == "1"
        assert list(q.quarantined) == [1] and "NUL" in q.quarantined[1]

    pub = make_publisher(broker, q)
    run_with(pub, body)


def test_a_publish_refused_by_the_broker_acl_is_quarantined_and_the_lane_continues(make_broker, subscribe, tmp_path):
    """MQTT 5 reports an ACL refusal in the PUBACK; one refused topic must not block the lane."""
    acl = tmp_path / "acl"
    acl.write_text(f"pattern readwrite {BASE}/#\npattern deny {BASE}/pumps/bed13-x/#\n")
    broker = make_broker([f"acl_file {acl}"])
    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/pumps/+/events"])

    async def body() -> None:
        await pub.enqueue_event(event(1, pump_id="bed13-x"))  # refused by the ACL
        await pub.enqueue_event(event(2))
        payload, _ = await wait_for(sub, f"{BASE}/pumps/bed07-a/events")
        assert payload["detail"]["seq"] == "2"
        while q.pending():
            await asyncio.sleep(0.02)
        assert list(q.quarantined) == [1] and "refused" in q.quarantined[1]

    pub = make_publisher(broker, q, protocol="5")
    run_with(pub, body)


def test_broker_outage_every_event_and_alarm_arrives_in_order_once_it_returns(make_broker, subscribe):
    """Broker down BROKER_DOWN_S seconds while events keep coming; nothing lost, order kept.

    The broker runs with persistence and the dashboard with a persistent QoS 1 session, as
    docs/mqtt.md tells a deployment to: otherwise the broker forgets the subscription across
    its own restart and the dashboard misses what the gateway sends before it resubscribes.
    """
    broker = make_broker(["persistence true"])
    q = scratch_outbox()
    topics = [f"{BASE}/pumps/+/events", f"{BASE}/pumps/+/alarms", f"{BASE}/pumps/+/state"]
    sub = subscribe(broker, topics, client_id="dashboard", clean=False)
    total = 60

    async def body() -> None:
        await pub.wait_online()
        for n in range(20):
            await pub.enqueue_event(event(n, alarm=n % 4 == 0))
        while q.pending():
            await asyncio.sleep(0.02)
        await asyncio.to_thread(broker.stop)
        deadline = asyncio.get_running_loop().time() + BROKER_DOWN_S
        n = 20
        while asyncio.get_running_loop().time() < deadline:
            if n < total:
                await pub.enqueue_event(event(n, alarm=n % 4 == 0))
                pub.update_state(snapshot("bed07-a", f"{n}.5"))
                n += 1
            await asyncio.sleep(BROKER_DOWN_S / (total - 20))
        while n < total:
            await pub.enqueue_event(event(n, alarm=n % 4 == 0))
            pub.update_state(snapshot("bed07-a", f"{n}.5"))
            n += 1
        assert not pub.stats.connected and q.pending() > 0
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(sub.client.reconnect)
        seen: list[tuple[str, int]] = []
        states: list[str] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while len({x for x in seen}) < total and loop.time() < end:
            t, p, _ = await asyncio.to_thread(sub.next)
            data = json.loads(p)
            if t.endswith("/state"):
                states.append(data["channels"][0]["rate"]["value"])
            else:
                seen.append((t.rsplit("/", 1)[1], int(data["detail"]["seq"])))
        for lane in ("alarms", "events"):
            got = [n for kind, n in seen if kind == lane]
            want = [n for n in range(total) if (n % 4 == 0) == (lane == "alarms")]
            deduped = [n for i, n in enumerate(got) if n not in got[:i]]
            assert deduped == want, lane
            # QoS 1 repeats only what was in flight when the session broke.
            assert len(got) - len(deduped) <= pub.config.max_inflight
        # Latest state was coalesced while the broker was down: only the newest is sent.
        await asyncio.sleep(0.3)
        states += [json.loads(p)["channels"][0]["rate"]["value"] for t, p, _ in sub.drain() if t.endswith("/state")]
        assert states[-1] == f"{total - 1}.5" and len(states) <= 2

    pub = make_publisher(broker, q)
    run_with(pub, body, timeout=40 + BROKER_DOWN_S)


def test_retained_state_is_the_newest_after_a_broker_restart_without_persistence(broker, subscribe):
    q = scratch_outbox()

    async def body() -> None:
        pub.update_state(snapshot("bed07-a", "1.0"))
        await pub.wait_online()
        await asyncio.to_thread(broker.stop)  # retained messages are gone with it
        pub.update_state(snapshot("bed07-a", "2.0"))
        pub.update_state(snapshot("bed07-a", "3.0"))
        while pub.stats.connected:
            await asyncio.sleep(0.02)
        republished = pub.stats.retained_published
        await asyncio.to_thread(broker.start)
        await pub.wait_online()
        # the birth is acknowledged first; wait until the retained state was republished too,
        # or the late subscriber may see it live (not retained) instead of from the store
        while pub.stats.retained_published < republished + 3:
            await asyncio.sleep(0.02)
        late = await asyncio.to_thread(subscribe, broker, [f"{BASE}/#"])
        got = await collect(
            late, {f"{BASE}/{n}" for n in ("status", "pumps/bed07-a/state", "pumps/bed07-a/availability")}
        )
        assert all(retained for _, retained in got.values())
        assert got[f"{BASE}/pumps/bed07-a/state"][0]["channels"][0]["rate"]["value"] == "3.0"
        assert got[f"{BASE}/status"][0]["state"] == "online"
        assert got[f"{BASE}/pumps/bed07-a/availability"][0]["availability"] == "online"
        assert pub.stats.sessions == 2

    pub = make_publisher(broker, q)
    run_with(pub, body)


def test_a_rebirth_request_republishes_status_and_every_retained_topic(broker, subscribe):
    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/#"])

    async def body() -> None:
        pub.update_state(snapshot("bed07-a", "4.2"))
        await pub.wait_online()
        await wait_for(sub, f"{BASE}/pumps/bed07-a/state")
        await asyncio.to_thread(sub.drain)
        sub.client.publish("pumpgw/v1/rebirth", b"", qos=1)
        got = {}
        for _ in range(4):
            t, p, r = await asyncio.to_thread(sub.next)
            got[t] = json.loads(p)
        assert set(got) == {
            f"{BASE}/status",
            f"{BASE}/inventory",
            f"{BASE}/pumps/bed07-a/state",
            f"{BASE}/pumps/bed07-a/availability",
        }
        assert got[f"{BASE}/pumps/bed07-a/state"]["channels"][0]["rate"]["value"] == "4.2"
        assert pub.stats.rebirths == 1

    pub = make_publisher(broker, q)
    run_with(pub, body)


def test_a_clean_stop_publishes_offline_status(broker, subscribe):
    q = scratch_outbox()

    async def body() -> None:
        await pub.wait_online()

    pub = make_publisher(broker, q)
    run_with(pub, body)
    sub = subscribe(broker, [f"{BASE}/status"])
    t, p, retained = sub.next()
    assert retained and json.loads(p)["state"] == "offline"


def test_envelope_topics_are_used_verbatim(broker, subscribe):
    q = scratch_outbox()
    sub = subscribe(broker, ["elsewhere/x"])

    async def body() -> None:
        await q.enqueue(
            lane="mqtt-events",
            kind="mqtt-event",
            control_id="c",
            payload=encode_envelope("elsewhere/x", b"{}"),
            ttl_s=9,
        )
        t, p, _ = await asyncio.to_thread(sub.next)
        assert (t, p) == ("elsewhere/x", b"{}")

    pub = make_publisher(broker, q)
    run_with(pub, body)


def test_gateway_alert_reaches_the_alerts_topic_through_the_durable_queue(broker, subscribe):
    """An outbox alert (e.g. a quarantined message) is logged and published on .../alerts."""
    from gateway.alerts import GatewayAlerts

    q = scratch_outbox()
    alerts = GatewayAlerts()
    sub = subscribe(broker, [f"{BASE}/alerts"])

    async def body() -> None:
        forwarder = asyncio.create_task(alerts.forward(pub))
        try:
            alerts.raise_alert("message_quarantined", {"lane": "ehr", "control_id": "X1", "reason": "AE from receiver"})
            payload, _ = await wait_for(sub, f"{BASE}/alerts")
        finally:
            forwarder.cancel()
            await asyncio.gather(forwarder, return_exceptions=True)
        assert payload["alert"] == "message_quarantined" and payload["details"]["control_id"] == "X1"
        assert payload["gateway"] == "gw1" and payload["schema_version"] == 1

    pub = make_publisher(broker, q)
    run_with(pub, body)
