"""One MLLP connection to a receiver: connect (TCP or TLS), send a frame, read its ACK.

Every way an exchange can fail without a usable ACK -- timeout, connection loss, garbage,
a reply that is not an ACK, an ACK for another message -- raises :class:`DeliveryError` after
closing the connection, so the sender reconnects and resends the same bytes. Peer bytes only
ever reach the WIRE log level; ordinary logs get counts and offsets.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from common.mllp.errors import MllpGarbage
from common.mllp.framing import MllpDecoder, frame
from gateway.log import WIRE, get_logger
from gateway.mllp.ack import Ack, parse_ack
from gateway.mllp.errors import AckError, DeliveryError
from gateway.outbox import OutboxMessage
from gateway.peertext import summarise_reply, token


class TlsFailure(DeliveryError):
    """Certificate or handshake failure: a configuration problem, longest backoff."""


class MllpLink:
    def __init__(
        self,
        *,
        lane: str,
        host: str,
        port: int,
        connect_timeout_s: float,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        max_frame_bytes: int,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.max_frame_bytes = max_frame_bytes
        self.where = f"lane {lane} ({host}:{port})"
        self.log = get_logger("pumpgw.mllp", lane=lane, receiver=f"{host}:{port}")
        self.last_acked: str | None = None  # MSH-10 of the last accepted message
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = MllpDecoder(max_frame_bytes)
        self._rx_since_connect = 0  # bytes read on this connection (0 + EOF on TLS: see below)
        self._whitespace_warned = False  # one WARNING per connection for a whitespace-flooding peer
        self._refusal_reported = False
        # The ACK timeout: one timer per link, re-armed only when it fires (see _watch)
        self._deadline: float | None = None  # loop time by which the exchange in progress must end
        self._timeout_s = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False
        # Full replies only here, at WIRE level: enabled by logging.wire_trace at debug (PHI).
        self._wire_rx = logging.getLogger(f"pumpgw.wire.mllp.{lane}.rx")

    @property
    def connected(self) -> bool:
        """A connection is open and the receiver has not closed it (ITI TF-2x C.2.1 lets it
        close an idle one)."""
        if self._reader is None or self._writer is None:
            return False
        if self._reader.at_eof() or self._writer.is_closing():
            self.disconnect()
            return False
        return True

    async def exchange(self, msg: OutboxMessage, timeout_s: float) -> Ack:
        """Send ``msg`` once and return the receiver's ACK for it (any code)."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise DeliveryError(f"not connected while sending {msg.control_id}")
        self._arm(timeout_s)
        try:
            writer.write(frame(msg.payload))
            await writer.drain()
            return await self._read_ack(reader, msg)
        except (OSError, EOFError) as exc:
            self.disconnect()
            if self._timed_out:
                raise self._no_ack(msg) from None
            what = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
            raise DeliveryError(f"connection lost while sending {msg.control_id}: {what}") from None
        except DeliveryError:
            self.disconnect()
            raise
        finally:
            self._deadline = None

    def _arm(self, timeout_s: float) -> None:
        """Start the ACK timeout of an exchange. Not a timer per message (``asyncio.timeout``
        cost 11 us of the ~300 us a delivered message costs on a slow machine): the link's one
        timer fires at the oldest deadline, finds the exchange then in progress, if any, and
        sleeps on until that one's deadline (:meth:`_watch`)."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout_s
        self._timeout_s = timeout_s
        self._timed_out = False
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._watch)

    def _watch(self) -> None:
        """The deadline of the exchange in progress passed: abort the connection, which ends
        its write or read at once; :meth:`exchange` then reports "no ACK within"."""
        self._timer = None
        if self._deadline is None:
            return  # no exchange in progress: the next one arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._watch)
            return
        self._timed_out = True
        if self._writer is not None:
            self._writer.transport.abort()

    def _no_ack(self, msg: OutboxMessage) -> DeliveryError:
        return DeliveryError(f"no ACK within {self._timeout_s:g} s for {msg.control_id}")

    async def _read_ack(self, reader: asyncio.StreamReader, msg: OutboxMessage) -> Ack:
        while True:
            data = await reader.read(65536)
            if not data:
                if self._timed_out:
                    raise self._no_ack(msg)
                if self.ssl_context is not None and self._rx_since_connect == 0:
                    self._tls_closed_silently(msg)
                raise DeliveryError(f"receiver closed the connection before the ACK for {msg.control_id}")
            self._rx_since_connect += len(data)
            for item in self._decoder.feed(data):
                if isinstance(item, MllpGarbage):
                    # The sample is peer bytes: only at WIRE level; logs get count and offset.
                    self._wire_rx.log(WIRE, "%s: bytes outside a frame: %r", self.where, item.sample)
                    what = f"{item.byte_count} byte(s) outside an MLLP frame at offset {item.offset}"
                    if not item.sample.strip():
                        self.log.log(
                            logging.WARNING if not self._whitespace_warned else logging.DEBUG,
                            "whitespace outside an MLLP frame ignored; more on this connection at DEBUG",
                            bytes=item.byte_count,
                            offset=item.offset,
                        )
                        self._whitespace_warned = True
                        continue
                    raise DeliveryError(f"garbage instead of an ACK for {msg.control_id}: {what}")
                if isinstance(item, Exception):
                    raise DeliveryError(f"garbage instead of an ACK for {msg.control_id}: {item}")
                self._wire_rx.log(WIRE, "%s: reply %r", self.where, item)
                try:
                    ack = parse_ack(item)
                except AckError as exc:
                    raise DeliveryError(
                        f"reply to {msg.control_id} is not an ACK: {exc.reason} ({summarise_reply(item)})"
                    ) from None
                if ack.control_id != msg.control_id and ack.control_id == self.last_acked and ack.accepted:
                    # the receiver ACKed the previous message twice: that ACK is spent, the
                    # answer to this message is still to come (resending would duplicate it)
                    self.log.debug("duplicate ACK ignored", control_id=token(ack.control_id))
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
        self.log.error(
            "receiver closed the TLS connection right after the handshake without a reply: it "
            "probably refused our client certificate (expired, wrong CA, or none configured: check "
            "tls.cert_file/key_file and the receiver's trusted CAs); retrying with backoff",
            control_id=msg.control_id,
        )

    async def connect(self) -> None:
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
            self.log.error("TLS handshake failed (no plaintext fallback)", error=str(exc))
            raise TlsFailure(f"TLS handshake with {self.host}:{self.port} failed: {exc}") from None
        except OSError as exc:
            raise DeliveryError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._decoder = MllpDecoder(self.max_frame_bytes)
        self._rx_since_connect = 0
        self._whitespace_warned = False
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            _enable_keepalive(sock)

    def disconnect(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is not None:
            self._writer.transport.abort()  # no graceful close: the peer may never read
        self._reader = self._writer = None


def _enable_keepalive(sock: socket.socket) -> None:
    """Detect a dead peer on an idle connection (half-open) within about a minute."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
