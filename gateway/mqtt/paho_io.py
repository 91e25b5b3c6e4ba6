"""A paho-mqtt client's network I/O run by the asyncio loop: no paho network thread.

paho's socket callbacks are wired to ``loop.add_reader``/``add_writer`` (aiomqtt's way):
readable -> ``loop_read``, writable -> ``loop_write``, and a ``call_later`` tick runs
``loop_misc`` for keep-alive pings. paho's ``connect()`` runs in an executor (it blocks for the
TCP connection and the TLS handshake); socket callbacks arriving on that thread are ignored
and the socket is taken over from the loop afterwards with :meth:`PahoSocketDriver.attach`,
so paho is only ever touched from one thread at a time.

What paho reports as a failure (a return code) is handed to ``on_lost`` with paho's text;
:mod:`gateway.mqtt.connection` turns it into an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

MISC_INTERVAL_S = 1.0
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux only


class PahoSocketDriver:
    def __init__(self, client: paho.Client, on_lost: Callable[[str], None]) -> None:
        self._client = client
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._sock: Any = None
        self._writing = False
        self._tick: asyncio.TimerHandle | None = None
        self._stopped = False
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    def attach(self) -> bool:
        """Take over the socket paho opened in the executor; False if there is none (closed)."""
        self._sock = self._client.socket()
        if self._sock is None:
            return False
        # MQTT packets are small and an alarm must not wait for Nagle's algorithm to batch it.
        _setsockopt(self._sock, socket.TCP_NODELAY, 1)
        self._loop.add_reader(self._sock, self._on_readable)
        if self._client.want_write() and not self._writing:
            self._loop.add_writer(self._sock, self._on_writable)
            self._writing = True
        self._tick = self._loop.call_later(MISC_INTERVAL_S, self._on_tick)
        return True

    def flush(self) -> None:
        """Write the queued packets now, as few TCP segments as possible.

        paho writes one packet per ``send``; with TCP_NODELAY each would be a segment of its
        own and a wake-up of the broker. Corked, a window of publishes leaves as one or a few
        segments when uncorked (Linux ``TCP_CORK``; elsewhere they are just written now). What
        the non-blocking socket does not take waits for the writer callback as before.
        """
        sock = self._sock
        if not self._writing or sock is None:
            return
        cork = _CORK
        if cork is None or not _setsockopt(sock, cork, 1):
            self._on_writable()
            return
        try:
            self._on_writable()
        finally:
            _setsockopt(sock, cork, 0)  # sends what is queued now

    def stop(self) -> None:
        """No more keep-alive ticks (the session is over)."""
        self._stopped = True
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def close(self) -> None:
        """Stop watching the socket and close it (also one a cancelled connect may open later)."""
        sock = self._sock if self._sock is not None else self._client.socket()
        self._unregister(self._sock)
        self._sock = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # ---- loop callbacks ----------------------------------------------------------------------

    def _on_readable(self) -> None:
        if _QUICKACK is not None and self._sock is not None:
            # Acknowledge at once: a broker without TCP_NODELAY holds back the next PUBACK
            # until our ACK, and the kernel would delay that ACK by up to 40 ms.
            _setsockopt(self._sock, _QUICKACK, 1)
        rc = self._client.loop_read()
        # A TLS socket may hold decrypted bytes the selector cannot see.
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and _tls_pending(self._sock):
            rc = self._client.loop_read()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._on_lost(paho.error_string(rc))

    def _on_writable(self) -> None:
        rc = self._client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._on_lost(paho.error_string(rc))

    def _on_tick(self) -> None:
        self._tick = None
        if self._stopped:
            return
        rc = self._client.loop_misc()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._on_lost(f"keep-alive: {paho.error_string(rc)}")
            return
        self._tick = self._loop.call_later(MISC_INTERVAL_S, self._on_tick)

    # ---- paho's socket callbacks ---------------------------------------------------------------

    def _on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Called inside connect() on the executor thread; attach() registers it afterwards.
        return None

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._on_loop_thread():
            self._unregister(sock)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._on_loop_thread() and self._sock is not None and not self._writing:
            self._loop.add_writer(self._sock, self._on_writable)
            self._writing = True

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._on_loop_thread() and self._writing and self._sock is not None:
            self._loop.remove_writer(self._sock)
            self._writing = False

    def _unregister(self, sock: Any) -> None:
        if sock is None or sock is not self._sock:
            return
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
            if self._writing:
                self._loop.remove_writer(sock)
        self._writing = False


def _setsockopt(sock: Any, option: int, value: int) -> bool:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except (OSError, AttributeError):  # closed meanwhile, or not a TCP socket
        return False
    return True


def _tls_pending(sock: Any) -> bool:
    pending = getattr(sock, "pending", None)
    return bool(pending and pending() > 0)
