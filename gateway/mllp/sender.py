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

The outbox is used through its windowed API, as the MQTT sender uses it: a window of the
lane's oldest messages is claimed at once (:meth:`Outbox.claim_many`), then sent one at a
time -- exactly one in flight -- and each outcome is recorded (:meth:`Outbox.finish_many`)
before the next message goes out, so after a crash only the message in flight is sent again.
The connection itself is :mod:`gateway.mllp.link`; the TLS context :mod:`gateway.mllp.tls`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from common.mllp.framing import DEFAULT_MAX_FRAME_BYTES
from gateway.backoff import jittered
from gateway.errors import RetryLater
from gateway.log import get_logger
from gateway.mllp.ack import Ack
from gateway.mllp.link import MllpLink, TlsFailure
from gateway.mllp.tls import make_client_ssl_context
from gateway.outbox import Outbox, OutboxMessage, Outcome
from gateway.peertext import bound_text, err_codes

__all__ = ["ALARM_PROBE_MAX_S", "MllpSender", "SenderMetrics", "backoff_for_lane", "make_client_ssl_context"]

T = TypeVar("T")
WINDOW = 128  # messages claimed at once (one transaction); still sent one at a time

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
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.idle_check_s = idle_check_s
        self.max_frame_bytes = max_frame_bytes
        self.state = "stopped"  # idle | connecting | sending | backoff | stopped
        self.last_error = ""
        self.failing = False  # a delivery attempt failed and none has succeeded since (readiness)
        self.delivered = 0
        self._link = MllpLink(
            lane=lane,
            host=host,
            port=port,
            connect_timeout_s=connect_timeout_s,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            max_frame_bytes=max_frame_bytes,
        )
        self._progress = time.monotonic()
        self._wait_exp = jittered(initial_backoff_s, max_backoff_s)
        self.log = get_logger("pumpgw.mllp", lane=lane, receiver=f"{host}:{port}")
        self._stopping = False
        self.metrics = metrics

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
            self.log.info("in-flight messages returned to pending", count=back)
        window: deque[OutboxMessage] = deque()
        try:
            while True:
                if not window:
                    window.extend(await self._record(self._wait_for_window))
                    if not window:
                        return  # stop() while idle
                msg = window[0]
                outcome = await self._outcome(msg)
                if not self._recorded_at_once(outcome):
                    await self._record(partial(self.outbox.finish_many, [outcome]))
                window.popleft()
                if self._stopping:
                    return  # the rest of the window returns to pending (outbox close or next start)
        finally:
            self.state = "stopped"
            self._link.disconnect()

    def _recorded_at_once(self, outcome: Outcome) -> bool:
        """A delivery recorded without the retry machinery (the common case); False leaves
        the outcome to :meth:`_record`, which retries until the outbox can write it."""
        if outcome.state != "delivered":
            return False
        try:
            self.outbox.delivered(outcome.message, outcome.ack_text)
        except RetryLater:
            return False
        return True

    async def _outcome(self, msg: OutboxMessage) -> Outcome:
        """Send ``msg`` until the receiver accepts or refuses it for good, or its TTL passes."""
        try:
            ack = await self._deliver(msg)
        except _Expired:
            return Outcome(msg, "expired", reason=f"TTL of {msg.ttl_s:g} s passed after {msg.attempts} attempt(s)")
        self._progress = time.monotonic()
        if ack.accepted:
            self.delivered += 1
            self._link.last_acked = msg.control_id
            return Outcome(msg, "delivered", ack_text=ack.code)
        return Outcome(  # AE / CE
            msg, "quarantined", reason=f"{ack.code} from receiver", ack_text=bound_text(ack.text or ack.code)
        )

    async def _record(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run an outbox state change, retrying it while the outbox cannot write (full disk,
        storage busy).

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
                self.log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "outbox cannot record a state change; retrying",
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
                self._progress = time.monotonic()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if failures:
                self.log.info("outbox state change recorded after failed attempts", failures=failures)
            return result

    async def _wait_for_window(self) -> list[OutboxMessage]:
        wake = self.outbox.waiter(self.lane)
        while not self._stopping:
            wake.clear()  # before the query: a commit after it sets the event again
            msgs = await self.outbox.claim_many(self.lane, WINDOW)
            self._progress = time.monotonic()
            if msgs:
                return msgs
            self.state = "idle"
            try:
                async with asyncio.timeout(self.idle_check_s):
                    await wake.wait()
            except TimeoutError:
                pass  # periodic check: rows requeued by the operator CLI, watchdog progress
        return []

    async def _deliver(self, msg: OutboxMessage) -> Ack:
        """Send until an accept or error ACK; AR/CR and link failures retry with backoff."""
        try:
            return await self._attempt(msg)  # the fast path: no retry machinery per message
        except RetryLater as exc:  # DeliveryError, _Rejected
            first: list[BaseException] = [exc]
        failures = 0

        def wait(retry_state: RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(exc, TlsFailure):
                return self.max_backoff_s
            return self._wait_exp(retry_state)

        def before_sleep(retry_state: RetryCallState) -> None:
            nonlocal failures
            failures += 1
            self.failing = True
            self.state = "backoff"
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            self.last_error = str(exc)
            self.backoffs = [*self.backoffs[-15:], retry_state.upcoming_sleep]
            level = logging.WARNING if failures == 1 else logging.DEBUG
            if isinstance(exc, _Rejected):
                level = logging.WARNING
            self.log.log(
                level,
                "message not accepted; retrying after backoff",
                control_id=msg.control_id,
                id=msg.id,
                error=str(exc),
                retry_in_s=round(retry_state.upcoming_sleep, 2),
                attempt=retry_state.attempt_number,
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
        self.failing = False
        self.log.info("delivering again after failed attempts", failures=failures)
        return ack

    async def _attempt(self, msg: OutboxMessage) -> Ack:
        if msg.expires_at <= time.time():
            raise _Expired()
        if not self._link.connected:
            self.state = "connecting"
            await self._link.connect()
        self.state = "sending"
        msg.attempts += 1
        sent_at = time.monotonic()
        ack = await self._link.exchange(msg, self.ack_timeout_s)
        if self.metrics is not None:
            self.metrics.ack_received(self.lane, ack.code, time.monotonic() - sent_at)
        if ack.rejected:
            raise _Rejected(ack)
        return ack
