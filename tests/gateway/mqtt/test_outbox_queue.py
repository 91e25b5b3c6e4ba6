"""The MQTT sender's view of the SQLite outbox: head-of-line redelivery and TTL."""

from __future__ import annotations

import asyncio
import sqlite3

from gateway.mqtt.outbox_queue import OutboxQueue
from gateway.outbox import Outbox


async def test_unacknowledged_messages_are_handed_out_again_in_order_until_delivered(tmp_path):
    q = OutboxQueue(Outbox.open(tmp_path / "o.db"))
    for i in range(3):
        await q.enqueue(lane="mqtt-events", kind="mqtt-event", control_id=f"m{i}", payload=b"t\x00{}", ttl_s=60)
    first = [m.control_id for m in await q.claim("mqtt-events", 2)]
    again = [m.control_id for m in await q.claim("mqtt-events", 3)]  # e.g. after a reconnect
    assert first == ["m0", "m1"] and again == ["m0", "m1", "m2"]
    await q.mark_delivered((await q.claim("mqtt-events", 1))[0].id)
    assert [m.control_id for m in await q.claim("mqtt-events", 3)] == ["m1", "m2"]
    q.outbox.close()


async def test_alarm_held_past_its_ttl_is_expired_not_published_late(tmp_path):
    """Held across a broker outage longer than its TTL, an alarm is kept as expired."""
    q = OutboxQueue(Outbox.open(tmp_path / "o.db"))
    await q.enqueue(lane="mqtt-alarms", kind="mqtt-alarm", control_id="a1", payload=b"t\x00{}", ttl_s=0.2)
    await q.enqueue(lane="mqtt-alarms", kind="mqtt-alarm", control_id="a2", payload=b"t\x00{}", ttl_s=60)
    assert [m.control_id for m in await q.claim("mqtt-alarms", 5)] == ["a1", "a2"]
    await asyncio.sleep(0.3)
    assert [m.control_id for m in await q.claim("mqtt-alarms", 5)] == ["a2"]
    q.outbox.close()
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("SELECT state FROM messages WHERE control_id='a1'").fetchone()[0] == "expired"
