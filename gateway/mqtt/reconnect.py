"""Keeping the gateway connected to its broker: connect, serve a session, back off, again.

Reconnection is its own stateful object at the outermost layer (aioesphomeapi's
``ReconnectLogic``): it owns the one backoff (:class:`gateway.backoff.Backoff`, full jitter
with a cap, ``mqtt.retry``), the attempt counters and the logging policy:

* refused credentials (:class:`MqttAuthError`), unusable local TLS or password files
  (:class:`MqttSetupError`) and a publish the broker refuses for the whole session
  (:class:`MqttPublishError`) wait the cap and are logged at ERROR each time, because a
  person has to act;
* a failed connect or a lost session is retried with the jittered backoff; only the first
  failure of a run of them is logged, and the recovery.

Each attempt gets a fresh session id: the Last Will written at connect and the birth of the
session carry the same one, so a consumer can pair them (docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import structlog

from gateway.backoff import Backoff
from gateway.config.model import MqttConfig
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.errors import MqttAuthError, MqttConnectionLost, MqttError, MqttPublishError, MqttSetupError
from gateway.mqtt.stats import PublisherStats

log = structlog.get_logger("pumpgw.mqtt")

Connect = Callable[[str], Awaitable[MqttConnection]]  # session id -> an open connection
Serve = Callable[[MqttConnection, str], Awaitable[None]]  # returns at a stop, raises when lost


class Reconnector:
    def __init__(self, config: MqttConfig, stats: PublisherStats, stop: asyncio.Event) -> None:
        self.config = config
        self.stats = stats
        self._stop = stop
        self._backoff = Backoff(config.retry.initial_backoff_s, config.retry.max_backoff_s)
        self._failing = False  # in a run of failed attempts (log the first, and the recovery)

    async def run(self, connect: Connect, serve: Serve) -> None:
        """Until the stop event is set: connect, serve the session, wait, again."""
        while not self._stop.is_set():
            self.stats.connect_attempts += 1
            session = uuid.uuid4().hex[:16]
            try:
                conn = await connect(session)
            except (MqttAuthError, MqttSetupError) as exc:
                self.stats.auth_failures += isinstance(exc, MqttAuthError)
                self.stats.note_error(exc)
                delay = self._backoff.longest()
                log.error("mqtt.connect_refused", error=str(exc), retry_in_s=round(delay, 3))
            except MqttError as exc:
                self.stats.note_error(exc)
                delay = self._backoff.next_delay()
                if not self._failing:
                    log.warning("mqtt.connect_failed", error=str(exc), retry_in_s=round(delay, 3))
                self._failing = True
            else:
                self._backoff.reset()
                if self._failing:
                    log.info("mqtt.reconnected", host=self.config.host, port=self.config.port)
                self._failing = False
                delay = await self._serve(conn, session, serve)
            self.stats.last_delay_s = delay
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _serve(self, conn: MqttConnection, session: str, serve: Serve) -> float:
        """Run one session until it ends; return the delay before the next attempt."""
        self.stats.sessions += 1
        self.stats.connected = True
        delay = 0.0
        try:
            await serve(conn, session)
        except* MqttPublishError as eg:
            self.stats.note_error(eg.exceptions[0])
            delay = self._backoff.longest()
            log.error("mqtt.publish_refused", error=str(eg.exceptions[0]), retry_in_s=round(delay, 3))
        except* MqttConnectionLost as eg:
            delay = self._backoff.next_delay()
            if not self._stop.is_set():  # at a stop, in-flight publishes fail by design
                self.stats.note_error(eg.exceptions[0])
                log.warning("mqtt.connection_lost", error=str(eg.exceptions[0]), retry_in_s=round(delay, 3))
        finally:
            self.stats.connected = False
            conn.abort()
        return delay
