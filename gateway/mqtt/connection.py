"""One MQTT session over paho-mqtt, driven from the asyncio loop.

:class:`MqttConnection` opens a session (CONNECT, CONNACK, SUBACKs), turns each publish into a
future resolved by its PUBACK, and fails every pending future at once when the session ends.
:mod:`gateway.mqtt.paho_io` runs paho's socket on the loop.

Each session uses a fresh paho client with a clean session: nothing is resent by paho's
in-memory queue (it is lost on a restart anyway, peers.md §3). Delivery guarantees come
from the outbox above; this class only reports which publishes the broker acknowledged.

This module is the one boundary where paho's return codes and reason codes become
:mod:`gateway.mqtt.errors` exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.mqtt.errors import (
    MqttAuthError,
    MqttConnectError,
    MqttConnectionLost,
    MqttError,
    MqttPublishError,
    MqttSetupError,
    MqttTlsError,
)
from gateway.mqtt.paho_io import PahoSocketDriver
from gateway.mqtt.settings import ConnectSettings, Will

log = structlog.get_logger("pumpgw.mqtt")
# CONNACK reason codes that mean "your credentials": MQTT 5 §3.2.2.2 (0x86, 0x87); paho maps
# MQTT 3.1.1 return codes 4 and 5 (§3.2.2.3) onto the same values.
_AUTH_REASONS = frozenset({0x86, 0x87})

MessageHandler = Callable[[str, bytes, bool], None]


def _paho_error(rc: int, settings: ConnectSettings, doing: str) -> MqttError:
    text = paho.error_string(rc)
    if rc in (MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_CONN_LOST, MQTTErrorCode.MQTT_ERR_KEEPALIVE):
        return MqttConnectionLost(f"{doing}: {text}", host=settings.host, port=settings.port, reason=text)
    return MqttConnectError(f"{doing}: {text} (paho rc {rc})", host=settings.host, port=settings.port, reason=text)


class MqttConnection:
    """An open MQTT session. Create with :meth:`open`; end with :meth:`disconnect` or :meth:`abort`."""

    def __init__(self, settings: ConnectSettings, on_message: MessageHandler | None) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._pending: dict[int, tuple[asyncio.Future[None], str]] = {}
        self._connack: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._closing = False
        self.inbound_refused = 0
        protocol = MQTTProtocolVersion.MQTTv5 if settings.protocol == "5" else MQTTProtocolVersion.MQTTv311
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=protocol,
            clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else True,
        )
        client.connect_timeout = settings.connect_timeout_s
        client.max_inflight_messages = settings.max_inflight
        client.max_queued_messages = 0
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            client.tls_set_context(settings.tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_ack
        client.on_subscribe = self._on_suback
        client.on_message = self._on_paho_message
        self._client = client
        self._io = PahoSocketDriver(client, on_lost=self._lost)

    # ---- opening -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        settings: ConnectSettings,
        *,
        will: Will | None = None,
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler | None = None,
    ) -> MqttConnection:
        """Connect, wait for a successful CONNACK and the SUBACKs; raise an MqttError otherwise."""
        conn = cls(settings, on_message)
        try:
            await conn._connect(will)
            if subscriptions:
                await conn._subscribe(subscriptions)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _connect(self, will: Will | None) -> None:
        s = self.settings
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        kwargs: dict[str, Any] = {}
        if s.protocol == "5":
            # A fresh session each time (the outbox above resends), kept by the broker
            # for session_expiry_s after a drop so its Last Will outlives a broker restart on
            # brokers that restore wills; Maximum Packet Size bounds what the broker may send
            # us (MQTT 5 §3.1.2.11.3-4). MQTT 3.1.1 has neither: docs/security.md.
            kwargs["clean_start"] = True
            props = Properties(PacketTypes.CONNECT)
            if s.session_expiry_s:
                props.SessionExpiryInterval = s.session_expiry_s
            if s.max_packet_bytes:
                props.MaximumPacketSize = s.max_packet_bytes
            kwargs["properties"] = props
        call = functools.partial(self._client.connect, s.host, s.port, s.keepalive_s, **kwargs)
        work = self._loop.run_in_executor(None, call)
        try:
            rc = await asyncio.shield(work)
        except asyncio.CancelledError:
            # The thread cannot be interrupted; close whatever socket it ends up opening.
            work.add_done_callback(lambda _f: self._io.close())
            raise
        except ssl.SSLCertVerificationError as exc:
            raise MqttTlsError(f"server certificate rejected: {exc.verify_message}", host=s.host, port=s.port) from exc
        except ssl.SSLError as exc:
            raise MqttTlsError(f"TLS handshake failed: {exc.reason or exc}", host=s.host, port=s.port) from exc
        except TimeoutError as exc:
            raise MqttConnectError(
                f"no TCP/TLS connection within {s.connect_timeout_s} s", host=s.host, port=s.port, reason="timeout"
            ) from exc
        except OSError as exc:
            raise MqttConnectError(
                f"cannot connect: {exc.strerror or exc}", host=s.host, port=s.port, reason=type(exc).__name__
            ) from exc
        except ValueError as exc:
            raise MqttSetupError(f"invalid connection settings: {exc}", host=s.host, port=s.port) from exc
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _paho_error(rc, s, "sending CONNECT")
        # Back on the loop thread: take over the socket paho opened in the executor.
        if not self._io.attach():
            raise MqttConnectionLost("connection closed during CONNECT", host=s.host, port=s.port)
        try:
            async with asyncio.timeout(s.connect_timeout_s):
                reason = await asyncio.shield(self._connack)
        except TimeoutError as exc:
            raise MqttConnectError(
                f"no CONNACK within {s.connect_timeout_s} s", host=s.host, port=s.port, reason="timeout"
            ) from exc
        if reason.is_failure:
            if reason.value in _AUTH_REASONS:
                raise MqttAuthError(host=s.host, port=s.port, username=s.username, reason=reason.getName())
            raise MqttConnectError(
                f"CONNACK refused: {reason.getName()}", host=s.host, port=s.port, reason=reason.getName()
            )

    async def _subscribe(self, topics: Sequence[str]) -> None:
        rc, mid = self._client.subscribe([(t, 1) for t in topics])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _paho_error(rc, self.settings, "subscribing")
        fut: asyncio.Future[None] = self._loop.create_future()
        self._pending[mid] = (fut, ",".join(topics))
        async with asyncio.timeout(self.settings.connect_timeout_s):
            await fut

    # ---- use -----------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connack.done() and not self._closed.done()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, expiry_s: int | None = None
    ) -> asyncio.Future[None]:
        """Queue one publish; the future resolves on PUBACK (QoS 1) or once written (QoS 0).

        It fails with :class:`MqttConnectionLost` if the session ends first, and with
        :class:`MqttPublishError` if an MQTT 5 broker refuses the message.
        """
        s = self.settings
        if self._closed.done():
            raise MqttConnectionLost("publish on a closed session", host=s.host, port=s.port)
        props = None
        if expiry_s is not None and s.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = max(1, int(expiry_s))
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _paho_error(info.rc, s, f"publishing to {topic!r}")
        fut: asyncio.Future[None] = self._loop.create_future()
        self._pending[info.mid] = (fut, topic)
        return fut

    def flush(self) -> None:
        """Write the queued publishes now, in as few TCP segments as possible, instead of at
        the loop's next turn: a sender calls it after queueing a batch, so the broker works
        on it meanwhile (:meth:`PahoSocketDriver.flush`)."""
        self._io.flush()

    async def wait_closed(self) -> None:
        """Return when the session ends; raise :class:`MqttConnectionLost` unless we ended it."""
        await asyncio.shield(self._closed)

    async def disconnect(self, timeout_s: float = 2.0) -> None:
        """Send DISCONNECT (the broker then discards the Last Will) and close."""
        if self._closed.done():
            return
        self._closing = True
        rc = self._client.disconnect()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            with contextlib.suppress(TimeoutError, MqttError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(self._closed)
        self.abort()

    def abort(self) -> None:
        """Close the socket without DISCONNECT (the broker publishes the Last Will)."""
        self._closing = True
        self._io.close()
        self._finish(None)

    # ---- paho callbacks (loop thread) ----------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        if not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self._lost(reason.getName() if isinstance(reason, ReasonCode) else str(reason))

    def _on_ack(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        entry = self._pending.pop(mid, None)
        if entry is None or entry[0].done():
            return
        fut, topic = entry
        if reason.is_failure:
            s = self.settings
            fut.set_exception(MqttPublishError(host=s.host, port=s.port, topic=topic, reason=reason.getName()))
        else:
            fut.set_result(None)

    def _on_suback(self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
        entry = self._pending.pop(mid, None)
        if entry is None or entry[0].done():
            return
        fut, topics = entry
        refused = [r.getName() for r in reasons if r.is_failure]
        if refused:
            s = self.settings
            fut.set_exception(MqttPublishError(host=s.host, port=s.port, topic=topics, reason="; ".join(refused)))
        else:
            fut.set_result(None)

    def _on_paho_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # MQTT 3.1.1 cannot announce a Maximum Packet Size, so enforce it here too: nothing
        # larger is handed on to be parsed (it was read, but it goes no further).
        limit = self.settings.max_packet_bytes
        if limit and len(message.payload) > limit:
            self.inbound_refused += 1
            log.warning("mqtt.inbound_refused", topic=message.topic, bytes=len(message.payload), limit=limit)
            return
        if self._on_message is not None:
            self._on_message(message.topic, bytes(message.payload), bool(message.retain))

    # ---- teardown ------------------------------------------------------------------------

    def _lost(self, reason: str) -> None:
        if self._closed.done():
            return
        s = self.settings
        err = MqttConnectionLost(f"session ended: {reason}", host=s.host, port=s.port, reason=reason)
        if not self._connack.done():
            self._connack.set_exception(err)
            self._connack.exception()  # retrieved: reported by _connect, not as "never retrieved"
        self._io.close()
        self._finish(None if self._closing else err)

    def _finish(self, err: MqttConnectionLost | None) -> None:
        self._io.stop()
        if self._closed.done():
            return
        s = self.settings
        failure = err or MqttConnectionLost("session closed", host=s.host, port=s.port, reason="closed")
        for fut, _topic in self._pending.values():
            if not fut.done():
                fut.set_exception(failure)
                fut.exception()  # the sender learns of the loss from wait_closed()
        self._pending.clear()
        if not self._connack.done():
            self._connack.set_exception(failure)
            self._connack.exception()
        if err is None:
            self._closed.set_result(None)
        else:
            self._closed.set_exception(err)
            self._closed.exception()
