"""The MLLP listener of one vendor-server source: the boundary, and nothing clinical.

Safety at the boundary (issue 13 item 3):

* binds to the configured address only (never 0.0.0.0 unless configured so);
* TLS when configured, with no plaintext fallback (a connection that does not complete the
  handshake is closed by the TLS layer before a byte is read); mutual TLS when a client CA is
  configured (a certificate is then required), optionally restricted to certificate names;
* an allowlist of sender addresses / networks; a connection limit; an idle timeout;
* frames bounded by ``max_frame_bytes`` and reads of at most 64 KiB, so one connection holds
  at most one frame plus one read; a frame too large closes the connection (the sender's
  retry will fail the same way: an ERROR names the limit);
* nothing the sender wrote is logged above DEBUG (patient data): addresses, counts, control
  ids and rule ids only.

Messages of one connection are answered in order; the handler decides what (handler.py).
Conformance findings are judged after the ACK by the handler's reporter, which this listener's
task runs (conformance.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl

from common.mllp.errors import MllpError, MllpFrameTooLarge
from common.mllp.framing import MllpDecoder, frame
from gateway.config.model import SourceConfig
from gateway.log import get_logger
from gateway.mllp.errors import TlsConfigError
from gateway.sources.ack import acknowledgements
from gateway.sources.handler import InboundHandler

READ_CHUNK = 65536


def make_server_ssl_context(config: SourceConfig) -> ssl.SSLContext | None:
    tls = config.tls
    if not tls.enabled:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(str(tls.cert_file), f"cannot load the listener certificate/key: {exc}") from None
    if tls.client_ca_file is not None:
        try:
            ctx.load_verify_locations(str(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(str(tls.client_ca_file), f"cannot load the client CA bundle: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def certificate_names(cert: dict | None) -> set[str]:
    """CN and DNS subjectAltNames of a verified peer certificate (``getpeercert()`` form)."""
    if not cert:
        return set()
    names = {value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}
    return names


class SourceListener:
    def __init__(self, config: SourceConfig, handler: InboundHandler, *, application: str, facility: str) -> None:
        self.config = config
        self.handler = handler
        self.application, self.facility = application, facility
        self.log = get_logger("pumpgw.source", source=config.name)
        self._networks = [ipaddress.ip_network(a, strict=False) for a in config.allow]
        self._ssl = make_server_ssl_context(config)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self.port: int | None = None
        self.ready = asyncio.Event()
        self.counters = {"connections": 0, "refused_connections": 0, "frame_errors": 0}

    async def run(self) -> None:
        """Serve until cancelled; open connections are closed with the listener.

        The conformance reporter (conformance.py) is this task's child: it lives and ends
        with the listener, and a failure of either restarts both (the supervisor's backoff)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.handler.conformance.run(), name=f"pumpgw-source-{self.config.name}-conformance")
                await self._listen()
        except ExceptionGroup as group:  # the supervisor logs and shows the error itself (bind ...)
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept,
            host=self.config.bind,
            port=self.config.port,
            ssl=self._ssl,
            ssl_handshake_timeout=10.0 if self._ssl else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.log.info(
            "source listening",
            bind=self.config.bind,
            port=self.port,
            tls=self._ssl is not None,
            mutual_tls=self.config.tls.client_ca_file is not None,
        )
        self.ready.set()
        try:
            await asyncio.Future()
        finally:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    # -- one connection ---------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername") or ("?", 0)
        address = str(peer[0])
        refusal = self._admission(address, writer)
        if refusal is not None:
            self.counters["refused_connections"] += 1
            self.log.warning("connection refused", peer=address, reason=refusal)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        self._connections.add(task)
        self.counters["connections"] += 1
        self.log.info("sender connected", peer=address, open=len(self._connections))
        try:
            await self._serve(reader, writer, address)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self.log.info("sender connection ended", peer=address, reason=type(exc).__name__)
        except asyncio.CancelledError:
            # the listener is stopping: end normally (asyncio's stream callback reports a
            # cancelled handler task as an error). A message being handled is either
            # committed or not; unacknowledged, the sender resends it.
            self.log.info("sender connection closed: the source is stopping", peer=address)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _admission(self, address: str, writer: asyncio.StreamWriter) -> str | None:
        if len(self._connections) >= self.config.max_connections:
            return f"connection limit {self.config.max_connections} reached"
        if self._networks:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return "peer address unreadable"
            if not any(ip in net for net in self._networks):
                return "address not in the allowlist"
        if self.config.allow_names:
            names = certificate_names(writer.get_extra_info("peercert"))
            if not names & set(self.config.allow_names):
                return "certificate name not in the allowlist"
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        decoder = MllpDecoder(max_frame_bytes=self.config.max_frame_bytes)
        while True:
            try:  # asyncio.timeout, not wait_for: no extra task per read (inbound throughput)
                async with asyncio.timeout(self.config.idle_timeout_s):
                    data = await reader.read(READ_CHUNK)
            except TimeoutError:
                self.log.info("idle sender disconnected", peer=address, idle_timeout_s=self.config.idle_timeout_s)
                return
            if not data:
                if decoder.buffered:
                    self.log.warning(
                        "sender disconnected mid-frame; the partial message is discarded (no ACK)",
                        peer=address,
                        bytes=decoder.buffered,
                    )
                return
            for item in decoder.feed(data):
                if isinstance(item, MllpError):
                    self.counters["frame_errors"] += 1
                    self.log.warning(
                        "framing error", peer=address, error=type(item).__name__, offset=getattr(item, "offset", None)
                    )
                    if isinstance(item, MllpFrameTooLarge):
                        self.log.error(
                            "frame larger than max_frame_bytes; connection closed",
                            peer=address,
                            max_frame_bytes=self.config.max_frame_bytes,
                        )
                        return
                    continue
                message, outcome = await self.handler.handle(item)
                if outcome is None:
                    return  # not committed: no answer, the sender resends
                for ack in acknowledgements(message.msh, outcome, application=self.application, facility=self.facility):
                    writer.write(frame(ack))
                await writer.drain()
