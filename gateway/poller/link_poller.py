"""One poller task per link.

A link is what the wire is: a serial line (several NE-1000 pumps may share one multi-drop
line) or one TCP connection to a pump rack (a B. Braun SpaceCom serves every slot over one
connection). The poller owns the link and its :class:`~drivers.line.Line` -- the lock and
protocol state every driver on the wire shares -- for as long as the link is open; requests
on it are strictly sequential, one outstanding request per wire (style.md, zigpy-znp), and
each pump keeps its own poll interval and silence counter (:mod:`gateway.poller.schedule`).
A link that fails is reopened after the gateway's one backoff policy
(:class:`~gateway.backoff.Backoff`), reset by a good poll, not by an open.

The poller knows nothing about HL7 or MQTT: it hands snapshots and communication changes to a
:class:`~gateway.poller.sink.SnapshotSink`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from drivers.errors import DriverError, LinkError, PumpRefused, ReplyTimeout, SafeModeActive
from drivers.line import Line
from drivers.registry import driver_class
from drivers.transport import Link
from gateway.backoff import Backoff
from gateway.config.model import PumpConfig
from gateway.log import get_logger
from gateway.poller.links import driver_address, group_by_link, open_link
from gateway.poller.reasons import reason
from gateway.poller.schedule import PumpState, next_slot
from gateway.poller.sink import PollMetrics, SnapshotSink

__all__ = ["LinkPoller", "PollMetrics", "SnapshotSink", "group_by_link", "next_slot", "open_link", "reason"]

IDENTITY_RECHECK_S = 300.0  # re-identify to catch a pump swapped on the same port
REPEAT_SUMMARY_EVERY = 20  # while a link stays down: one WARNING per this many attempts
DEAD_LINK_TIMEOUTS = 3
"""Consecutive timeouts of *every* pump on a link after which the link itself is taken as dead
(a half-open TCP connection after a rack reboot behind NAT stays "open" for ~15 min)."""


class LinkPoller:
    """Owns one link and the pumps on it; :meth:`run` is the supervised task body."""

    def __init__(
        self,
        key: str,
        pumps: list[PumpConfig],
        sink: SnapshotSink,
        *,
        opener: Callable[[PumpConfig, str], Awaitable[Link]] = open_link,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        metrics: PollMetrics | None = None,
        alert: Callable[[str, Mapping[str, object]], None] | None = None,
    ) -> None:
        self.key = key
        self.metrics = metrics
        self.link_up = False
        self.last_link_error = ""
        self.sink = sink
        self.alert = alert
        self.opener = opener
        self.backoff = Backoff(backoff_initial_s, backoff_max_s)
        self.pumps = [PumpState(p) for p in pumps]
        self.line: Line | None = None
        """The open link and the state its drivers share; None while the link is down."""
        self.log = get_logger("pumpgw.poller", link=key)
        self._progress = time.monotonic()
        self.polls = 0
        self.reconnects = 0

    def progress(self) -> float:
        return self._progress

    @property
    def stale_after_s(self) -> float:
        """How long without progress means this poller is hung (for the watchdog)."""
        worst = max(p.config.poll_interval_s + 3 * p.config.request_timeout_s for p in self.pumps)
        return max(60.0, 3 * worst, self.backoff.max_s + 10)

    async def run(self) -> None:
        self.backoff.reset()
        while True:
            error: LinkError | None = None
            try:
                await self._open()
                await self._poll_forever()
            except LinkError as exc:
                error = exc
            except asyncio.CancelledError:
                self._report_carried_alarms_on_stop()
                raise
            finally:
                await self._close()
            await self._link_down(error)

    async def _open(self) -> None:
        """Open the link, make its :class:`Line` and one driver per pump on it."""
        link = await self.opener(self.pumps[0].config, self.key)
        self.line = line = Line(link)
        self.link_up = True
        if self.backoff.attempt:
            # the recovery, with the failures it ends (they were logged once, at the first)
            self.log.info(
                "link open again",
                pumps=[p.config.id for p in self.pumps],
                failed_attempts=self.backoff.attempt,
                last_error=self.last_link_error,
            )
            if self.metrics is not None:
                self.metrics.link_reopened(self.key)
        else:
            self.log.info("link open", pumps=[p.config.id for p in self.pumps])
        for state in self.pumps:
            cls = driver_class(state.config.protocol)
            state.driver = cls(
                line,
                pump_id=state.config.id,
                address=driver_address(state.config),
                request_timeout_s=state.config.request_timeout_s,
            )
            state.last_identify = float("-inf")
            state.timeouts = 0
            state.hand_over_alarms(self.log)

    async def _close(self) -> None:
        """Close before backing off: a dead link must not stay open during the wait."""
        for state in self.pumps:
            state.drop_driver()
        self.link_up = False
        line, self.line = self.line, None
        if line is not None:
            await line.link.close()

    async def _link_down(self, error: LinkError | None) -> None:
        """Log the failure, keep silence accounting running, and wait the backoff.

        The attempt counter is reset by a successful poll, not by an open: a device server
        that accepts and drops every connection still backs off (bounded rate). The first
        failure is logged at WARNING; repeats at DEBUG (the recovery line counts them), with
        one WARNING summary every REPEAT_SUMMARY_EVERY attempts while it stays down.
        """
        self.reconnects += 1
        delay = self.backoff.next_delay()  # full jitter: many gateways, one device server
        attempt = self.backoff.attempt
        self.last_link_error = reason(error) if error is not None else "closed"
        if attempt == 1:
            self.log.warning("link down; reconnecting", error=self.last_link_error, backoff_s=round(delay, 2))
        elif attempt % REPEAT_SUMMARY_EVERY == 0:
            self.log.warning(
                "link still down", error=self.last_link_error, failed_attempts=attempt, backoff_s=round(delay, 2)
            )
        else:
            self.log.debug(
                "link down; reconnecting", error=self.last_link_error, attempt=attempt, backoff_s=round(delay, 2)
            )
        await self._mark_lost_if_silent(self.last_link_error)
        await self._sleep_with_progress(delay)

    def _report_carried_alarms_on_stop(self) -> None:
        """The poller is being stopped: alarms not yet in a snapshot go no further."""
        for state in self.pumps:
            state.report_alarms_on_stop(self.log)

    async def _poll_forever(self) -> None:
        while True:
            now = time.monotonic()
            due = min(self.pumps, key=lambda s: s.next_poll)
            if due.next_poll > now:
                await self._sleep_with_progress(due.next_poll - now)
                continue
            due.next_poll = next_slot(due.next_poll, now, due.config.poll_interval_s)
            await self._poll_one(due)
            self._progress = time.monotonic()

    async def _poll_one(self, state: PumpState) -> None:
        assert state.driver is not None
        pump_id = state.config.id
        try:
            if time.monotonic() - state.last_identify >= min(IDENTITY_RECHECK_S, state.config.identify_interval_s):
                await self._identify(state)
            snapshot = await state.driver.poll()
        except LinkError:
            raise  # the whole link is gone: reconnect
        except ReplyTimeout as exc:
            self._count(pump_id, "timeout")
            state.timeouts += 1
            if all(p.timeouts >= DEAD_LINK_TIMEOUTS for p in self.pumps):
                raise LinkError(
                    self.key,
                    f"no pump answered {DEAD_LINK_TIMEOUTS} polls in a row "
                    f"(last: {reason(exc)}); taking the link as dead",
                ) from exc
            await self._poll_failed(state, exc)
            return
        except PumpRefused as exc:
            # The pump answered "no" (or is in a mode we must not poll): the link is fine, but
            # there is no usable state -- after comm_lost_after_s it is reported lost, with
            # the refusal as the reason, rather than shown "online" with stale data.
            self._count(pump_id, "refused")
            state.timeouts = 0  # it answered: the link is alive
            state.failures += 1
            if state.failures == 1:
                level = self.log.error if isinstance(exc, SafeModeActive) else self.log.warning
                level("pump refused a query", pump=pump_id, error=reason(exc), error_type=type(exc).__name__)
            await self._check_silence(state, f"pump refuses queries: {reason(exc)}")
            return
        except DriverError as exc:
            self._count(pump_id, "error")
            state.timeouts = 0  # something answered: the link is alive
            await self._poll_failed(state, exc)
            return
        state.timeouts = 0
        self.polls += 1
        self._count(pump_id, "ok")
        state.last_poll_at = datetime.now(UTC)
        self.backoff.reset()
        if state.failures:
            self.log.info("poll recovered", pump=pump_id, failed_polls=state.failures)
        state.failures = 0
        if state.lost:
            state.lost = False
            await self._isolated(state, "comm restored", self.sink.on_comm_restored(pump_id, datetime.now(UTC)))
        self._mark_alive(state)
        if await self._isolated(state, "snapshot", self.sink.on_snapshot(pump_id, snapshot)) and state.sink_failures:
            self.log.info("pump processing recovered", pump=pump_id, failed_snapshots=state.sink_failures)
            state.sink_failures = 0

    async def _isolated(self, state: PumpState, what: str, call: Awaitable[None]) -> bool:
        """Run one sink call for one pump; an unexpected exception is that pump's problem.

        It is logged with the pump id (first of a streak at ERROR with the traceback, then
        counted), raised as a gateway alert once per streak, and the snapshot is skipped --
        the poller and the pump's neighbours on the link carry on (design §2: one pump's bad
        data must not silence a rack). Cancellation and link errors still propagate.
        """
        try:
            await call
            return True
        except (asyncio.CancelledError, LinkError):
            raise
        except Exception as exc:
            state.sink_failures += 1
            if state.sink_failures == 1:
                self.log.exception(
                    "processing failed for one pump; snapshot skipped",
                    pump=state.config.id,
                    stage=what,
                    error_type=type(exc).__name__,
                )
                if self.alert is not None:
                    self.alert(
                        "pump_processing_failed",
                        {"pump": state.config.id, "link": self.key, "stage": what, "error_type": type(exc).__name__},
                    )
            return False

    async def _identify(self, state: PumpState) -> None:
        """Identify the pump. A pump that answers but not with its identity (refusal, garbled
        reply) is reported as unreadable and polled on; a dead link or a timeout is not an
        identity problem and goes to the caller's handling."""
        assert state.driver is not None
        try:
            identity = await state.driver.identify()
        except (LinkError, ReplyTimeout):
            raise
        except DriverError as exc:
            state.last_identify = time.monotonic()
            await self._isolated(
                state,
                "identity unreadable",
                self.sink.on_identity_unreadable(state.config.id, f"{type(exc).__name__}: {exc}"),
            )
            return
        state.last_identify = time.monotonic()
        await self._isolated(state, "identity", self.sink.on_identity(state.config.id, identity))

    async def _poll_failed(self, state: PumpState, exc: DriverError) -> None:
        state.failures += 1
        if state.failures == 1:  # log the first failure and the recovery, not every poll
            self.log.warning("poll failed", pump=state.config.id, error=reason(exc), error_type=type(exc).__name__)
        await self._check_silence(state, reason(exc))

    def _count(self, pump_id: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.poll_done(pump_id, outcome)

    def _mark_alive(self, state: PumpState) -> None:
        state.last_ok = time.monotonic()

    async def _check_silence(self, state: PumpState, reason: str) -> None:
        if not state.lost and time.monotonic() - state.last_ok >= state.config.comm_lost_after_s:
            state.lost = True
            self.log.error("communication lost", pump=state.config.id, reason=reason)
            await self._isolated(state, "comm lost", self.sink.on_comm_lost(state.config.id, datetime.now(UTC), reason))

    async def _mark_lost_if_silent(self, reason: str) -> None:
        for state in self.pumps:
            await self._check_silence(state, reason)

    async def _sleep_with_progress(self, seconds: float) -> None:
        """Sleep in short steps so silence is detected and the watchdog sees a live poller."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 1.0))
            self._progress = time.monotonic()
            if self.pumps[0].driver is None:  # link down: keep silence accounting running
                await self._mark_lost_if_silent("link down")
