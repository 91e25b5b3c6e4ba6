"""One poller task per link.

A link is what the wire is: a serial line (several NE-1000 pumps may share one multi-drop
line) or one TCP connection to a pump rack (a B. Braun SpaceCom serves every slot over one
connection). Requests on a link are strictly sequential -- one outstanding request per wire
(style.md, zigpy-znp) -- and each pump keeps its own poll interval and its own silence
counter, so one dead pump on a rack never marks its neighbours lost (pymodbus #1654 shows the
opposite).

The poller knows nothing about HL7 or MQTT: it hands snapshots and communication changes to a
:class:`SnapshotSink`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from drivers.base import PumpDriver
from drivers.errors import DriverError, FrameError, LinkError, PumpRefused, ReplyTimeout, SafeModeActive
from drivers.model import Alarm, PumpIdentity, PumpSnapshot
from drivers.registry import driver_class
from drivers.transport import Link, open_serial, open_tcp
from gateway.config.model import PumpConfig, SerialLink
from gateway.config.model import TcpLink as TcpLinkConfig
from gateway.log import get_logger

IDENTITY_RECHECK_S = 300.0  # re-identify to catch a pump swapped on the same port
REPEAT_SUMMARY_EVERY = 20  # while a link stays down: one WARNING per this many attempts
DEAD_LINK_TIMEOUTS = 3
"""Consecutive timeouts of *every* pump on a link after which the link itself is taken as dead
(a half-open TCP connection after a rack reboot behind NAT stays "open" for ~15 min)."""


class PollMetrics(Protocol):
    """What a poller reports for ``/metrics`` (gateway.health.metrics implements it)."""

    def poll_done(self, pump: str, outcome: str) -> None: ...
    def link_reopened(self, link: str) -> None: ...


class SnapshotSink(Protocol):
    async def on_snapshot(self, pump_id: str, snapshot: PumpSnapshot) -> None: ...
    async def on_identity(self, pump_id: str, identity: PumpIdentity) -> None: ...
    async def on_identity_unreadable(self, pump_id: str, reason: str) -> None: ...
    async def on_comm_lost(self, pump_id: str, at: datetime, reason: str) -> None: ...
    async def on_comm_restored(self, pump_id: str, at: datetime) -> None: ...


def reason(exc: BaseException) -> str:
    """What went wrong, without the pump and link (they are fields of the log line already)
    and without Python reprs of raw bytes (those are for the WIRE trace, and may carry
    patient data)."""
    if isinstance(exc, LinkError):
        return exc.reason
    if isinstance(exc, ReplyTimeout):
        return f"no reply to {exc.command} within {exc.timeout_s:g} s"
    if isinstance(exc, FrameError):
        return f"{exc.reason} at byte offset {exc.offset}"
    if isinstance(exc, PumpRefused):
        return f"refused {exc.command}: {exc.code} ({exc.meaning})"
    return str(exc) or type(exc).__name__


def driver_address(link: SerialLink | TcpLinkConfig) -> int | None:
    """The driver's ``address``: the multidrop address of a serial pump, or a rack position
    as ``pillar * 100 + slot`` (``drivers.bbraun_bcc.client.rack_address``)."""
    if isinstance(link, TcpLinkConfig):
        return None if link.pillar is None or link.slot is None else link.pillar * 100 + link.slot
    return link.address


def link_key(pump: PumpConfig) -> str:
    if isinstance(pump.link, SerialLink):
        return f"serial:{pump.link.url}"
    return f"tcp:{pump.link.host}:{pump.link.port}"


def group_by_link(pumps: Iterable[PumpConfig]) -> dict[str, list[PumpConfig]]:
    groups: dict[str, list[PumpConfig]] = {}
    for pump in pumps:
        groups.setdefault(link_key(pump), []).append(pump)
    return groups


async def open_link(pump: PumpConfig, name: str) -> Link:
    link = pump.link
    if isinstance(link, SerialLink):
        return await open_serial(
            link.url,
            name=name,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity,
            stopbits=link.stopbits,
        )
    return await open_tcp(link.host, link.port, name=name)


@dataclass
class _PumpState:
    config: PumpConfig
    driver: PumpDriver | None = None
    next_poll: float = 0.0
    last_ok: float = field(default_factory=time.monotonic)
    last_identify: float = float("-inf")
    lost: bool = False
    failures: int = 0
    timeouts: int = 0  # consecutive reply timeouts (any answer resets it)
    last_poll_at: datetime | None = None  # wall clock of the last good poll (status page)
    carried_alarms: tuple[Alarm, ...] = ()  # acknowledged at the pump, not yet in a snapshot
    sink_failures: int = 0  # consecutive snapshots the pipeline could not process for this pump


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
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.pumps = [_PumpState(p) for p in pumps]
        self.log = get_logger("pumpgw.poller", link=key)
        self._progress = time.monotonic()
        self.polls = 0
        self.reconnects = 0
        self._attempt = 0

    def progress(self) -> float:
        return self._progress

    @property
    def stale_after_s(self) -> float:
        """How long without progress means this poller is hung (for the watchdog)."""
        worst = max(p.config.poll_interval_s + 3 * p.config.request_timeout_s for p in self.pumps)
        return max(60.0, 3 * worst, self.backoff_max_s + 10)

    async def run(self) -> None:
        self._attempt = 0
        while True:
            link: Link | None = None
            error: LinkError | None = None
            try:
                link = await self.opener(self.pumps[0].config, self.key)
                self.link_up = True
                if self._attempt:
                    # the recovery, with the failures it ends (they were logged once, at the first)
                    self.log.info(
                        "link open again",
                        pumps=[p.config.id for p in self.pumps],
                        failed_attempts=self._attempt,
                        last_error=self.last_link_error,
                    )
                    if self.metrics is not None:
                        self.metrics.link_reopened(self.key)
                else:
                    self.log.info("link open", pumps=[p.config.id for p in self.pumps])
                for state in self.pumps:
                    cls = driver_class(state.config.protocol)
                    state.driver = cls(
                        link,
                        pump_id=state.config.id,
                        address=driver_address(state.config.link),
                        request_timeout_s=state.config.request_timeout_s,
                    )
                    state.last_identify = float("-inf")
                    state.timeouts = 0
                    self._hand_over_alarms(state)
                await self._poll_forever()
            except LinkError as exc:
                error = exc
            except asyncio.CancelledError:
                self._report_carried_alarms_on_stop()
                raise
            finally:
                # close before backing off: a dead link must not stay open during the wait;
                # alarms the pump already acknowledged go on to the next driver (§0 rule 4)
                for state in self.pumps:
                    if state.driver is not None:
                        state.carried_alarms = state.carried_alarms + state.driver.unreported_alarms
                    state.driver = None
                self.link_up = False
                if link is not None:
                    await link.close()
            # The attempt counter is reset by a successful poll, not by an open: a device
            # server that accepts and drops every connection still backs off (bounded rate).
            self._attempt += 1
            self.reconnects += 1
            delay = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(self._attempt, 16))
            delay = random.uniform(0, delay)  # full jitter: many gateways, one device server
            # The first failure at WARNING; repeats at DEBUG (the recovery line counts them), and
            # one WARNING summary every REPEAT_SUMMARY_EVERY attempts while it stays down.
            self.last_link_error = reason(error) if error is not None else "closed"
            if self._attempt == 1:
                self.log.warning("link down; reconnecting", error=self.last_link_error, backoff_s=round(delay, 2))
            elif self._attempt % REPEAT_SUMMARY_EVERY == 0:
                self.log.warning(
                    "link still down",
                    error=self.last_link_error,
                    failed_attempts=self._attempt,
                    backoff_s=round(delay, 2),
                )
            else:
                self.log.debug(
                    "link down; reconnecting",
                    error=self.last_link_error,
                    attempt=self._attempt,
                    backoff_s=round(delay, 2),
                )
            await self._mark_lost_if_silent(self.last_link_error)
            await self._sleep_with_progress(delay)

    def _hand_over_alarms(self, state: _PumpState) -> None:
        """Give the new driver the alarms its predecessor had not yet put in a snapshot."""
        assert state.driver is not None
        carried, state.carried_alarms = state.carried_alarms, ()
        if not carried:
            return
        self.log.warning(
            "unreported alarms carried over to the new driver", pump=state.config.id, alarms=[a.code for a in carried]
        )
        for alarm in state.driver.adopt_alarms(carried):
            self.log.error(
                "alarm dropped: the new driver cannot carry it", pump=state.config.id, alarm=alarm.code, kind=alarm.kind
            )

    def _report_carried_alarms_on_stop(self) -> None:
        """The poller is being stopped: alarms not yet in a snapshot go no further."""
        for state in self.pumps:
            alarms = state.carried_alarms + (state.driver.unreported_alarms if state.driver else ())
            for alarm in alarms:
                self.log.error(
                    "poller stopped before an acknowledged alarm was reported",
                    pump=state.config.id,
                    alarm=alarm.code,
                    kind=alarm.kind,
                )

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

    async def _poll_one(self, state: _PumpState) -> None:
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
        self._attempt = 0
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

    async def _isolated(self, state: _PumpState, what: str, call: Awaitable[None]) -> bool:
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

    async def _identify(self, state: _PumpState) -> None:
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

    async def _poll_failed(self, state: _PumpState, exc: DriverError) -> None:
        state.failures += 1
        if state.failures == 1:  # log the first failure and the recovery, not every poll
            self.log.warning("poll failed", pump=state.config.id, error=reason(exc), error_type=type(exc).__name__)
        await self._check_silence(state, reason(exc))

    def _count(self, pump_id: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.poll_done(pump_id, outcome)

    def _mark_alive(self, state: _PumpState) -> None:
        state.last_ok = time.monotonic()

    async def _check_silence(self, state: _PumpState, reason: str) -> None:
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


def next_slot(scheduled: float, now: float, interval: float) -> float:
    """When to poll next after a poll due at ``scheduled`` ran at ``now``: on a fixed grid.

    A poll that ran late (the loop was busy, the link slow) is late, not lost: the next one
    stays on the grid (``scheduled + interval``), so the rate over a minute is the configured
    one. Only when the poll is a whole interval or more behind (the first poll, after a
    reconnect, a link slower than its interval) does the grid restart from now -- catching up
    several polls in a burst would only load the serial line.
    """
    if now - scheduled < interval:
        return scheduled + interval
    return now + interval
