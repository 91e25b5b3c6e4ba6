"""The collector: gateways' MQTT tree -> batches -> one PostgreSQL transaction -> PUBACK.

Loss-free by construction (design.md §7):

* MQTT 3.1.1 persistent session (fixed client id, clean session off) at QoS 1, so the broker
  keeps what arrives while the collector is away, and redelivers what it sent but never got
  a PUBACK for.
* paho's ``manual_ack``: a message is acknowledged only after the transaction holding it
  committed. A crash between commit and PUBACK means a redelivery, which the idempotent
  writer turns into no change.
* A PUBACK is sent only on the connection the message came in on: after a reconnect, packet
  ids restart, and acknowledging an old id could acknowledge a different, unwritten message.
* PostgreSQL away: the batch is kept and retried with capped backoff; nothing is acknowledged,
  so the broker stops sending once its in-flight window is full and keeps the rest queued.
* A message the database refuses on its own (a poison message) is written as a rejected row
  with its topic and reason, then acknowledged: one bad gateway never wedges the region.

Threads: paho's network thread (``loop_start``) only parses packets and queues them; the
collector's own thread batches, writes and acknowledges. Both are owned and joined by
:meth:`Collector.run`'s caller via ``stop``.
"""

from __future__ import annotations

import logging
import queue
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fleet import FleetError
from fleet.config import FleetSettings
from fleet.db.connect import connect
from fleet.db.writer import Writer
from fleet.ingest.parse import parse_message
from fleet.ingest.records import Record, Rejected

log = logging.getLogger("pumpgw.fleet.collector")


@dataclass(frozen=True, slots=True)
class Inbound:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    arrived: float


@dataclass
class CollectorStats:
    received: int = 0
    written: int = 0
    batches: int = 0
    rejected: int = 0
    acked: int = 0
    not_acked_stale: int = 0  # written, but their connection had gone: the broker redelivers them
    db_failures: int = 0
    connects: int = 0
    connected: bool = False
    last_error: str = ""
    batch_sizes: list[int] = field(default_factory=list)
    parse_s: float = 0.0  # time spent parsing, writing and acknowledging (bench: where it goes)
    write_s: float = 0.0
    ack_s: float = 0.0


def topic_filters(settings: FleetSettings) -> list[str]:
    m = settings.mqtt
    prefix = m.topic_prefix.rstrip("/")
    filters = [f"{prefix}/{site}/#" for site in m.sites] if m.sites else [f"{prefix}/#"]
    if m.shared_group:
        filters = [f"$share/{m.shared_group}/{f}" for f in filters]
        filters.append(f"{prefix}/library/current")  # every instance keeps the release
    elif m.sites:
        filters.append(f"{prefix}/library/current")
    return filters


class Collector:
    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.stats = CollectorStats()
        self._inbox: queue.Queue[Inbound] = queue.Queue()
        self._generation = 0
        self._lock = threading.Lock()
        self._writer = Writer(exclusive=not settings.mqtt.shared_group)
        self._conn: psycopg.Connection | None = None
        self.connected = threading.Event()
        self.client = self._client()

    # -- MQTT side (paho's network thread) ---------------------------------------------------
    def _client(self) -> paho.Client:
        m = self.settings.mqtt
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=m.client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
        )
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 30)
        if m.tls:
            ctx = ssl.create_default_context(cafile=m.ca_file or None)
            if m.cert_file:
                ctx.load_cert_chain(m.cert_file, m.key_file or None)
            client.tls_set_context(ctx)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_pre_connect = self._on_pre_connect
        return client

    def _on_pre_connect(self, client: paho.Client, _userdata: object) -> None:
        m = self.settings.mqtt
        if m.username:
            password = None
            if m.password_file:
                try:
                    password = Path(m.password_file).read_text(encoding="utf-8").splitlines()[0]
                except (OSError, IndexError) as exc:
                    log.error("cannot read mqtt.password_file %s: %s", m.password_file, exc)
            client.username_pw_set(m.username, password)

    def _on_connect(self, client: paho.Client, _u: object, flags: object, rc: object, _p: object = None) -> None:
        if getattr(rc, "is_failure", False):
            self.stats.last_error = f"broker refused the connection: {rc}"
            log.error("broker %s:%s refused the connection: %s", self.settings.mqtt.host, self.settings.mqtt.port, rc)
            return
        with self._lock:
            self._generation += 1
        self.stats.connects += 1
        self.stats.connected = True
        filters = topic_filters(self.settings)
        client.subscribe([(f, 1) for f in filters])
        log.info(
            "connected to %s:%s (session present: %s), subscribing to %s",
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            getattr(flags, "session_present", "?"),
            filters,
        )

    def _on_subscribe(
        self, _c: paho.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: Properties | None = None
    ) -> None:
        failed = [str(c) for c in codes if getattr(c, "is_failure", False)]
        if failed:
            self.stats.last_error = f"broker refused the subscription: {failed}"
            log.error("broker refused the subscription (%s): check its ACL for the fleet user", failed)
            return
        log.info("subscribed")
        m = self.settings.mqtt
        if m.shared_group:
            # A shared subscription gets no retained messages (MQTT 5 §4.8.2): ask every gateway
            # to republish its retained state (docs/mqtt.md, rebirth), which the group then shares.
            self.client.publish(f"{m.topic_prefix.rstrip('/')}/rebirth", b"", qos=1)
        self.connected.set()

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
        with self._lock:
            self._generation += 1  # packet ids of the old connection must never be acknowledged
        self.stats.connected = False
        self.connected.clear()
        log.warning("disconnected from the broker (%s); paho reconnects", rc)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        self.stats.received += 1
        self._inbox.put(Inbound(self._generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.monotonic()))

    # -- writer side (the collector's thread) -----------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Connect, then batch/write/ack until ``stop`` is set; flushes the last batch."""
        m = self.settings.mqtt
        self.client.connect_async(m.host, m.port, m.keepalive_s)
        self.client.loop_start()
        try:
            while not stop.is_set():
                batch = self._next_batch(stop)
                if batch:
                    self._commit(batch, stop)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            if self._conn is not None:
                self._conn.close()

    def _next_batch(self, stop: threading.Event) -> list[Inbound]:
        c = self.settings.collector
        try:
            batch = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + c.batch_wait_ms / 1000.0
        while len(batch) < c.batch_max and not stop.is_set():
            remaining = deadline - time.monotonic()
            try:
                # Keep filling while messages keep coming; a short lull ends the batch early.
                batch.append(self._inbox.get(timeout=max(0.0, min(remaining, 0.003))))
            except queue.Empty:
                break
        return batch

    def _commit(self, batch: list[Inbound], stop: threading.Event) -> None:
        prefix = self.settings.mqtt.topic_prefix
        t0 = time.perf_counter()
        records: list[Record] = [r for m in batch if (r := parse_message(prefix, m.topic, m.payload)) is not None]
        t1 = time.perf_counter()
        self.stats.parse_s += t1 - t0
        delay = 0.2
        while True:
            try:
                self._write(records)
                break
            except (psycopg.OperationalError, psycopg.InterfaceError, FleetError) as exc:
                self.stats.db_failures += 1
                self.stats.last_error = str(exc).strip()[:300]
                if self.stats.db_failures == 1 or delay >= self.settings.collector.retry_max_s:
                    log.error(
                        "PostgreSQL unavailable, batch of %d kept for retry: %s", len(batch), self.stats.last_error
                    )
                self._drop_connection()
                if stop.wait(random.uniform(0, delay)):  # noqa: S311 - jitter, not crypto
                    return  # shutting down: nothing acknowledged, the broker redelivers
                delay = min(delay * 2, self.settings.collector.retry_max_s)
            except psycopg.Error as exc:
                log.error(
                    "PostgreSQL refused a batch of %d (%s); writing its messages one by one",
                    len(batch),
                    str(exc).strip()[:200],
                )
                self._drop_connection()
                self._write_one_by_one(records, stop)
                break
        t2 = time.perf_counter()
        self.stats.write_s += t2 - t1
        self.stats.batches += 1
        self.stats.written += len(batch)
        self.stats.rejected += sum(isinstance(r, Rejected) for r in records)
        self.stats.batch_sizes.append(len(batch))
        del self.stats.batch_sizes[:-1000]
        self._ack(batch)
        self.stats.ack_s += time.perf_counter() - t2

    def _write(self, records: list[Record]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings.database.dsn)
        self._writer.write(self._conn, records)

    def _write_one_by_one(self, records: list[Record], stop: threading.Event) -> None:
        for rec in records:
            while not stop.is_set():
                try:
                    self._write([rec])
                    break
                except (psycopg.OperationalError, psycopg.InterfaceError, FleetError):
                    self._drop_connection()
                    stop.wait(1.0)
                except psycopg.Error as exc:
                    self._drop_connection()
                    topic = getattr(rec, "topic", f"{getattr(rec, 'site', '')}/{getattr(rec, 'gateway', '')}")
                    rec = Rejected(str(topic)[:200], f"database refused it: {str(exc).strip()[:150]}")

    def _drop_connection(self) -> None:
        self._writer.forget()
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def _ack(self, batch: list[Inbound]) -> None:
        # Held while acknowledging: a reconnect in between would reuse packet ids.
        with self._lock:
            for m in batch:
                if m.qos == 0:
                    continue
                if m.generation == self._generation:
                    self.client.ack(m.mid, m.qos)
                    self.stats.acked += 1
                else:
                    self.stats.not_acked_stale += 1
