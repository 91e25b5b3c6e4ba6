"""The MQTT lane sender on the real outbox and a real Mosquitto: the window, order, TTL.

The broker is frozen with SIGSTOP to hold PUBACKs back (its socket still takes our bytes), and
killed with SIGKILL to break a session with publishes in flight.
"""

from __future__ import annotations

import asyncio
import json
import signal

from gateway.mqtt.envelope import encode_envelope
from tests.gateway.mqtt.conftest import Broker, event
from tests.gateway.mqtt.scratch_outbox import scratch_outbox
from tests.gateway.mqtt.test_publisher import BASE, make_publisher, run_with

WINDOW = 5


async def until(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_with_puback_withheld_exactly_one_window_is_in_flight_and_the_rest_follow_in_order(broker, subscribe):
    q = scratch_outbox()
    sub = subscribe(broker, [f"{BASE}/pumps/+/events"])
    total = 4 * WINDOW

    async def body() -> None:
        await pub.wait_online()
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            await q.commit([pub.render_event(event(n)) for n in range(total)])  # one burst
            await until(lambda: pub.senders[1].unacknowledged > 0)
            await asyncio.sleep(0.5)  # time enough to send more, were the window not bounded
            assert pub.senders[1].unacknowledged == WINDOW
            # claimed from the outbox: the window, and at most one window ahead of it
            lane = q.stats()["mqtt-events"]
            assert (lane.in_flight, lane.pending) == (2 * WINDOW, total - 2 * WINDOW)
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        await until(lambda: q.pending() == 0)
        seqs = []
        while len(seqs) < total:
            _, payload, _ = await asyncio.to_thread(sub.next)
            seqs.append(int(json.loads(payload)["detail"]["seq"]))
        assert seqs == list(range(total)) and len(q.delivered) == total

    pub = make_publisher(broker, q, max_inflight=WINDOW)
    run_with(pub, body)


def test_an_alarm_in_flight_when_the_session_breaks_is_expired_after_its_ttl_not_published_late(broker: Broker):
    """Sent but never acknowledged, then the broker dies; when it is back the alarm's TTL has
    passed: it is kept as expired (design.md §2 inv. 4), and the one behind it, still in time,
    is published again and delivered."""
    q = scratch_outbox()
    topic = f"{BASE}/pumps/bed07-a/alarms"

    async def body() -> None:
        await pub.wait_online()
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        for control_id, ttl_s in (("short", 1.0), ("long", 60.0)):
            payload = encode_envelope(topic, json.dumps({"id": control_id}).encode())
            await q.enqueue(lane="mqtt-alarms", kind="mqtt-alarm", control_id=control_id, payload=payload, ttl_s=ttl_s)
        await until(lambda: q.stats()["mqtt-alarms"].in_flight == 2)
        await asyncio.sleep(1.2)  # past the short TTL, with no PUBACK
        broker.proc.kill()  # SIGKILL works on a stopped process: the session breaks
        broker.proc.wait(5)
        broker.proc = None
        broker.log.close()
        await until(lambda: not pub.stats.connected)
        broker.start()
        await until(lambda: q.states("mqtt-alarms")["long"] == "delivered", timeout=20)
        assert q.states("mqtt-alarms")["short"] == "expired"
        reason = q.rows("SELECT reason FROM messages WHERE control_id='short'")[0][0]
        assert "TTL" in reason

    pub = make_publisher(broker, q)
    run_with(pub, body)


def test_events_committed_one_by_one_are_published_without_waiting_for_the_heads_puback(broker):
    q = scratch_outbox()

    async def body() -> None:
        await pub.wait_online()
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            for n in range(WINDOW + 2):
                await pub.enqueue_event(event(n))  # one commit each, as a single pump's events
            await until(lambda: pub.senders[1].unacknowledged == WINDOW)
            await asyncio.sleep(0.3)
            assert pub.senders[1].unacknowledged == WINDOW  # the two behind wait for a place
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        await until(lambda: q.pending() == 0)
        assert len(q.delivered) == WINDOW + 2

    pub = make_publisher(broker, q, max_inflight=WINDOW)
    run_with(pub, body)
