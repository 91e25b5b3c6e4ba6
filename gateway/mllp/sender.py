"""One MLLP sender per destination: drains its outbox lane with exactly one message in flight.

ACK handling (design.md §5, ihe-pcd.md §10.2 and §12.2):

* AA / CA whose MSA-2 equals MSH-10 -> delivered, next message;
* AR / CR -> receiver-side problem: the same bytes again after backoff, same connection;
* AE / CE -> the message itself is faulty: quarantined (reason + ACK text), alert, next;
* MSA-2 != MSH-10, garbage, a non-ACK, timeout, connection loss or refusal -> no ACK:
  close, reconnect with backoff (tenacity, full jitter, capped) and resend the same bytes;
* TTL passed before a (re)send -> expired, never sent as if live (inv. 4).

Half-open connections are caught by the ACK timeout (and TCP keep-alive while idle).
Certificate and TLS handshake failures wait the longest backoff at once: retrying fast
cannot fix a configuration problem. There is never a fallback to plaintext.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from functools import partial
from pathlib import Path
from typing import Protocol

from tenacity import AsyncRetrying, retry_if_exception_type

from common.mllp.errors import MllpGarbage
from common.mllp.framing import DEFAULT_MAX_FRAME_BYTES, MllpDecoder, frame
from gateway.backoff import jittered
from gateway.credentials import CredentialError, read_secret, resolve
from gateway.errors import RetryLater
from gateway.log import WIRE
from gateway.mllp.ack import Ack, parse_ack
from gateway.mllp.errors import AckError, DeliveryError, TlsConfigError
from gateway.outbox import Outbox, OutboxMessage
from gateway.peertext import bound_text, err_codes, summarise_reply, token

log = logging.getLogger("pumpgw.mllp")

ALARM_PROBE_INITIAL_S = 0.1
ALARM_PROBE_MAX_S = 2.0
"""Alarm lanes probe a lost receiver with their own short, capped backoff (design §2 inv. 4):
after an outage the first alarm goes out within one probe interval, however long the data
lanes' backoff has grown. An alarm lane is one connection; probing it every 2 s is cheap."""


def backoff_for_lane(lane: str, initial_s: float, max_s: float) -> tuple[float, float]:
    """The (initial, max) retry backoff a lane uses: the destination's, capped for alarm lanes."""
    if lane.endswith(".alarms"):
        return min(initial_s, ALARM_PROBE_INITIAL_S), min(max_s, ALARM_PROBE_MAX_S)
    return initial_s, max_s


class SenderMetrics(Protocol):
    """What a sender reports for ``/metrics`` (gateway.health.metrics implements it)."""

    def ack_received(self, lane: str, code: str, latency_s: float) -> None: ...


class _Rejected(RetryLater):
    """AR/CR: resend unchanged after backoff (not a link failure; the connection stays)."""

    def __init__(self, ack: Ack) -> None:
        self.ack = ack
        super().__init__(ack_summary(ack))


def ack_summary(ack: Ack) -> str:
    """What logs may say about an ACK: code, error codes, text length -- never its text,
    which receivers fill with echoes of the message (patient identifiers included)."""
    codes = err_codes(ack.errors)
    return f"{ack.code} (text {len(ack.text)} chars" + (f", ERR codes {','.join(codes)})" if codes else ")")


class _Expired(Exception):
    pass


class _TlsFailure(DeliveryError):
    """Certificate or handshake failure: a configuration problem, longest backoff."""


class MllpSender:
    def __init__(
        self,
        outbox: Outbox,
        *,
        lane: str,
        host: str,
        port: int,
        ack_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        idle_check_s: float = 5.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        metrics: SenderMetrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.lane = lane
        self.host = host
        self.port = port
        self.ack_timeout_s = ack_timeout_s
        self.connect_timeout_s = connect_timeout_s
        initial_backoff_s, max_backoff_s = backoff_for_lane(lane, initial_backoff_s, max_backoff_s)
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.backoffs: list[float] = []  # the last few retry waits (diagnosis, tests)
        self._last_acked: str | None = None  # MSH-10 of the last accepted message
        self._whitespace_warned = False  # one WARNING per connection for a whitespace-flooding peer
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.idle_check_s = idle_check_s
        self.max_frame_bytes = max_frame_bytes
        self.state = "stopped"  # idle | connecting | sending | backoff | stopped
        self.last_error = ""
        self.delivered = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = MllpDecoder(max_frame_bytes)
        self._progress = time.monotonic()
        self._wait_exp = jittered(initial_backoff_s, max_backoff_s)
        self._where = f"lane {lane} ({host}:{port})"
        self._stopping = False
        self.metrics = metrics
        # Full replies only here, at WIRE level: enabled by logging.wire_trace at debug (PHI).
        self._wire_rx = logging.getLogger(f"pumpgw.wire.mllp.{lane}.rx")
        self._rx_since_connect = 0  # bytes read on this connection (0 + EOF on TLS: see below)
        self._refusal_reported = False

    def progress(self) -> float:
        """Monotonic time of the last successful step, attempt or idle check (watchdog).

        While retrying, it advances at every attempt, so a watchdog threshold must exceed
        ``max_backoff_s + connect_timeout_s + ack_timeout_s``.
        """
        return self._progress

    def stop(self) -> None:
        """Finish the message in hand (its ACK is awaited, its outcome committed), then return
        without claiming another; the supervisor cancels the task if that takes too long, and
        the outbox's close puts whatever was in flight back to pending."""
        self._stopping = True
        self.outbox.waiter(self.lane).set()

    async def run(self) -> None:
        """Deliver the lane until cancelled or stopped."""
        back = await self._record(lambda: self.outbox.reset_lane(self.lane))
        if back:
            log.info("%s: %d in-flight message(s) returned to pending", self._where, back)
        msg: OutboxMessage | None = None
        try:
            while True:
                if msg is None:
                    msg = await self._record(self._wait_for_message)
                    if msg is None:
                        return  # stop() while idle
                try:
                    ack = await self._deliver(msg)
                except _Expired:
                    done = msg
                    msg = await self._record(
                        partial(
                            self.outbox.finish,
                            done,
                            "expired",
                            reason=f"TTL of {done.ttl_s:g} s passed after {done.attempts} attempt(s)",
                            claim_next=not self._stopping,
                        )
                    )
                    continue
                self._progress = time.monotonic()
                done = msg
                if ack.accepted:
                    self.delivered += 1
                    self._last_acked = msg.control_id
                    msg = await self._record(
                        partial(self.outbox.finish, done, "delivered", ack_text=ack.code, claim_next=not self._stopping)
                    )
                else:  # AE / CE
                    msg = await self._record(
                        partial(
                            self.outbox.finish,
                            done,
                            "quarantined",
                            reason=f"{ack.code} from receiver",
                            ack_text=bound_text(ack.text or ack.code),
                            claim_next=not self._stopping,
                        )
                    )
                if self._stopping:
                    return
        finally:
            self.state = "stopped"
            self._disconnect()

    async def _record(self, op):
        """Run an outbox state change, retrying it while the outbox cannot write (full disk).

        The sender never dies of a write error: the message stays where it is (delivered on
        the wire, not yet recorded -- at worst resent once), the outbox reports the condition
        once, and the change is retried with a short capped backoff until it is recorded.
        """
        delay = 0.1
        failures = 0
        while True:
            try:
                result = await op()
            except RetryLater as exc:  # full disk, busy file; OutboxClosed ends the sender
                failures += 1
                self.state = "backoff"
                self.last_error = str(exc)
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "%s: outbox cannot record a state change (%s); retrying",
                    self._where,
                    exc,
                )
                self._progress = time.monotonic()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if failures:
                log.info("%s: outbox state change recorded after %d failed attempt(s)", self._where, failures)
            return result

    async def _wait_for_message(self) -> OutboxMessage | None:
        wake = self.outbox.waiter(self.lane)
        while not self._stopping:
            wake.clear()  # before the query: a commit after it sets the event again
            msg = await self.outbox.claim(self.lane)
            self._progress = time.monotonic()
            if msg is not None:
                return msg
            self.state = "idle"
            try:
                async with asyncio.timeout(self.idle_check_s):
                    await wake.wait()
            except TimeoutError:
                pass  # periodic check: rows requeued by the operator CLI, watchdog progress
        return None

    async def _deliver(self, msg: OutboxMessage) -> Ack:
        """Send until an accept or error ACK; AR/CR and link failures retry with backoff."""
        try:
            return await self._attempt(msg)  # the fast path: no retry machinery per message
        except RetryLater as exc:  # DeliveryError, _Rejected
            first: list[BaseException] = [exc]
        failures = 0

        def wait(retry_state) -> float:
            exc = retry_state.outcome.exception()
            if isinstance(exc, _TlsFailure):
                return self.max_backoff_s
            return self._wait_exp(retry_state)

        def before_sleep(retry_state) -> None:
            nonlocal failures
            failures += 1
            self.state = "backoff"
            exc = retry_state.outcome.exception()
            self.last_error = str(exc)
            self.backoffs = [*self.backoffs[-15:], retry_state.upcoming_sleep]
            level = logging.WARNING if failures == 1 else logging.DEBUG
            if isinstance(exc, _Rejected):
                level = logging.WARNING
            log.log(
                level,
                "%s: message %s (id %d) not accepted: %s; retry in %.2f s (attempt %d)",
                self._where,
                msg.control_id,
                msg.id,
                exc,
                retry_state.upcoming_sleep,
                retry_state.attempt_number,
            )

        async for attempt in AsyncRetrying(
            wait=wait,
            retry=retry_if_exception_type(RetryLater),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                if first:
                    raise first.pop()
                self._progress = time.monotonic()
                ack = await self._attempt(msg)
        log.info("%s: delivering again after %d failed attempt(s)", self._where, failures)
        return ack

    async def _attempt(self, msg: OutboxMessage) -> Ack:
        if msg.expires_at <= time.time():
            raise _Expired()
        if self._writer is not None and (self._reader.at_eof() or self._writer.is_closing()):
            self._disconnect()  # the receiver closed an idle connection (ITI TF-2x C.2.1)
        if self._writer is None:
            await self._connect()
        self.state = "sending"
        msg.attempts += 1
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(self.ack_timeout_s):
                self._writer.write(frame(msg.payload))
                await self._writer.drain()
                ack = await self._read_ack(msg)
        except TimeoutError:
            self._disconnect()
            raise DeliveryError(f"no ACK within {self.ack_timeout_s:g} s for {msg.control_id}") from None
        except (OSError, EOFError) as exc:
            self._disconnect()
            what = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
            raise DeliveryError(f"connection lost while sending {msg.control_id}: {what}") from None
        except DeliveryError:
            self._disconnect()
            raise
        if self.metrics is not None:
            self.metrics.ack_received(self.lane, ack.code, time.monotonic() - sent_at)
        if ack.rejected:
            raise _Rejected(ack)
        return ack

    async def _read_ack(self, msg: OutboxMessage) -> Ack:
        while True:
            data = await self._reader.read(65536)
            if not data:
                if self.ssl_context is not None and self._rx_since_connect == 0:
                    self._tls_closed_silently(msg)
                raise DeliveryError(f"receiver closed the connection before the ACK for {msg.control_id}")
            self._rx_since_connect += len(data)
            for item in self._decoder.feed(data):
                if isinstance(item, MllpGarbage):
                    # The sample is peer bytes: only at WIRE level; logs get count and offset.
                    self._wire_rx.log(WIRE, "%s: bytes outside a frame: %r", self._where, item.sample)
                    what = f"{item.byte_count} byte(s) outside an MLLP frame at offset {item.offset}"
                    if not item.sample.strip():
                        log.log(
                            logging.WARNING if not self._whitespace_warned else logging.DEBUG,
                            "%s: %s (whitespace, ignored; further whitespace on this connection at DEBUG)",
                            self._where,
                            what,
                        )
                        self._whitespace_warned = True
                        continue
                    raise DeliveryError(f"garbage instead of an ACK for {msg.control_id}: {what}")
                if isinstance(item, Exception):
                    raise DeliveryError(f"garbage instead of an ACK for {msg.control_id}: {item}")
                self._wire_rx.log(WIRE, "%s: reply %r", self._where, item)
                try:
                    ack = parse_ack(item)
                except AckError as exc:
                    raise DeliveryError(
                        f"reply to {msg.control_id} is not an ACK: {exc.reason} ({summarise_reply(item)})"
                    ) from None
                if ack.control_id != msg.control_id and ack.control_id == self._last_acked and ack.accepted:
                    # the receiver ACKed the previous message twice: that ACK is spent, the
                    # answer to this message is still to come (resending would duplicate it)
                    log.debug("%s: duplicate ACK for %s ignored", self._where, token(ack.control_id))
                    continue
                if ack.control_id != msg.control_id:
                    raise DeliveryError(
                        f"ACK answers {token(ack.control_id)!r}, expected MSA-2 = MSH-10 = {msg.control_id!r}; "
                        "treated as no ACK"
                    )
                self._refusal_reported = False
                return ack

    def _tls_closed_silently(self, msg: OutboxMessage) -> None:
        """A TLS receiver that closes right after the handshake, before any reply, has almost
        always refused our client certificate: with TLS 1.3 the client finishes its side of
        the handshake before the server checks the certificate, and asyncio reports the
        server's alert as a plain end of stream. Said at ERROR, once per streak, because a
        person has to act (certificate, key, or the receiver's trusted CA)."""
        if self._refusal_reported:
            return
        self._refusal_reported = True
        log.error(
            "%s: receiver closed the TLS connection right after the handshake without a reply to %s: it "
            "probably refused our client certificate (expired, wrong CA, or none configured: check "
            "tls.cert_file/key_file and the receiver's trusted CAs); retrying with backoff",
            self._where,
            msg.control_id,
        )

    async def _connect(self) -> None:
        self.state = "connecting"
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=(self.server_hostname or self.host) if self.ssl_context else None,
                    limit=1 << 20,
                )
        except TimeoutError:
            raise DeliveryError(
                f"connect to {self.host}:{self.port} timed out after {self.connect_timeout_s:g} s"
            ) from None
        except ssl.SSLError as exc:  # includes certificate verification failures
            log.error("%s: TLS handshake failed: %s (no plaintext fallback)", self._where, exc)
            raise _TlsFailure(f"TLS handshake with {self.host}:{self.port} failed: {exc}") from None
        except OSError as exc:
            raise DeliveryError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._decoder = MllpDecoder(self.max_frame_bytes)
        self._rx_since_connect = 0
        self._whitespace_warned = False
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            _enable_keepalive(sock)

    def _disconnect(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()  # no graceful close: the peer may never read
        self._reader = self._writer = None


def _enable_keepalive(sock: socket.socket) -> None:
    """Detect a dead peer on an idle connection (half-open) within about a minute."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def make_client_ssl_context(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    key_passphrase_file: str | Path | None = None,
    crl_file: str | Path | None = None,
) -> ssl.SSLContext:
    """A verifying client context (server certificate and host name always checked).

    ``ca_file`` None means the system CAs; ``cert_file``/``key_file`` add a client
    certificate for mutual TLS, the key possibly encrypted with the passphrase in
    ``key_passphrase_file``. Any path may be ``credential:NAME`` (a systemd credential,
    :mod:`gateway.credentials`). Unreadable files raise :class:`TlsConfigError`.
    """
    try:
        ca_file = resolve(ca_file) if ca_file else None
        cert_file = resolve(cert_file) if cert_file else None
        key_file = resolve(key_file) if key_file else None
        passphrase = read_secret(key_passphrase_file) if key_passphrase_file else None
    except CredentialError as exc:
        raise TlsConfigError(exc.name, exc.reason) from None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(str(ca_file), f"cannot load CA bundle: {getattr(exc, 'strerror', None) or exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if crl_file:  # the receiver's certificate is checked against the site's CRL (leaf)
        try:
            ctx.load_verify_locations(cafile=str(resolve(crl_file)))
        except (OSError, ssl.SSLError, CredentialError) as exc:
            raise TlsConfigError(str(crl_file), f"cannot load CRL: {exc}") from None
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if (cert_file is None) != (key_file is None):
        raise TlsConfigError(str(cert_file or key_file), "cert_file and key_file must be given together")
    if cert_file is not None:
        try:
            ctx.load_cert_chain(str(cert_file), str(key_file), password=passphrase)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(
                str(cert_file), f"cannot load client certificate/key: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    return ctx
