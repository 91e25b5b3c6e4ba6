"""The MQTT side of a simulated gateway: one paho client per gateway, QoS 1, its own PUBACK log.

Like a real gateway it sets a Last Will (retained ``offline`` status), publishes its birth on
every connection and keeps a persistent session, so paho resends what the broker has not
acknowledged after a reconnect. ``committed`` lists, in PUBACK order, every event/alarm/alert
the broker took responsibility for -- the sim's equivalent of a gateway outbox's "delivered"
rows, against which the reliability test checks the database. With ``log_path`` each PUBACK
is also appended to a file (flushed per line), so the record survives the test's process view.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from fleet.sim.payloads import Message


class SimPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        will: Message,
        *,
        log_path: Path | None = None,
        births: list[Message] | None = None,
    ) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=MQTTProtocolVersion.MQTTv311
        )
        self.client.max_inflight_messages_set(50)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]  # paho accepts floats
        self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.host, self.port = host, port
        self.births = births or []
        self.committed: list[dict[str, str]] = []
        self.published = 0
        self._pending: dict[int, dict[str, str] | None] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._log = log_path.open("a", encoding="utf-8") if log_path else None
        self.connected = threading.Event()
        self.all_acked = threading.Condition(self._lock)
        # Order per topic across reconnects: paho resends its unacknowledged messages only after
        # on_connect returns, and a publish() racing into that window would overtake them. New
        # messages therefore wait in our own FIFO from a disconnect until shortly after the
        # reconnect (as a gateway's outbox lane sends in order only once connected).
        self._ready = threading.Event()
        self._send_lock = threading.Lock()
        self._backlog: deque[Message] = deque()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, 20)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
        if getattr(rc, "is_failure", False):
            return
        with self._lock:
            for topic, payload, retain in self.births:
                self._pending[client.publish(topic, payload, qos=1, retain=retain).mid] = None
        self.connected.set()
        timer = threading.Timer(0.2, self._resume)
        timer.daemon = True
        timer.start()

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, _rc: object, _p: object = None) -> None:
        self._ready.clear()

    def _resume(self) -> None:
        with self._send_lock:
            if not self.client.is_connected():
                return
            while self._backlog:
                self._send(self._backlog.popleft())
            self._ready.set()

    def publish(self, message: Message) -> None:
        with self._send_lock:
            if self._ready.is_set() and not self._backlog:
                self._send(message)
            else:
                self._backlog.append(message)

    def _send(self, message: Message) -> None:
        topic, payload, retain = message
        key = None
        if not retain:  # events, alarms, alerts: what the test must find in the database
            doc = json.loads(payload)
            key = {"topic": topic, "message_id": doc["message_id"], "seq": doc.get("detail", {}).get("seq", "")}
        # Not under self._lock: paho calls on_publish holding its own mutex, which publish() needs.
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            self.published += 1
            if info.mid in self._early:  # the PUBACK beat us here
                self._early.discard(info.mid)
                self._commit(key)
            else:
                self._pending[info.mid] = key

    def _on_publish(self, _c: paho.Client, _u: object, mid: int, _rc: object, _p: object = None) -> None:
        with self._lock:
            if mid in self._pending:
                self._commit(self._pending.pop(mid))
            else:
                self._early.add(mid)
            if not self._pending:
                self.all_acked.notify_all()

    def _commit(self, key: dict[str, str] | None) -> None:
        if key is not None:
            self.committed.append(key)
            if self._log is not None:
                self._log.write(json.dumps(key) + "\n")
                self._log.flush()

    def wait_all_acked(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._backlog:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        with self._lock:
            return self.all_acked.wait_for(lambda: not self._pending, max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        if self._log is not None:
            self._log.close()
