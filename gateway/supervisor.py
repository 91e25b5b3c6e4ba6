"""The one owner of every long-running task of the daemon.

Each service (a poller per link, a sender per destination, the MQTT session, the library
watcher) is registered under a name with a coroutine factory. The supervisor

* starts them all as tasks it owns and tells systemd ``READY=1``;
* restarts a service whose coroutine raised, after a backoff (tenacity's jittered
  exponential wait), logging the crash with its name and traceback -- one broken pump link or
  receiver never takes the daemon down; the backoff starts again once a service has run
  healthily for ``healthy_after_s``;
* pets the systemd watchdog only while the event loop turns *and* every service that
  reports progress has made some recently -- a poller stuck on a read without timeout stops
  the pings and systemd restarts the daemon;
* on SIGTERM/SIGINT (or :meth:`request_stop`) tells systemd ``STOPPING=1``, cancels every
  service, waits at most ``shutdown_timeout_s``, then runs the registered closers (outbox
  commit, links) in reverse order.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from gateway.backoff import jittered
from gateway.log import get_logger
from gateway.sdnotify import Notifier

log = get_logger("pumpgw.supervisor")


@dataclass
class Service:
    name: str
    factory: Callable[[], Awaitable[object]]  # a task's result is not used: only its end is
    progress: Callable[[], float] | None = None
    stale_after_s: float = 60.0
    stopper: Callable[[], None] | None = None
    restarts: int = 0
    last_crash: str = ""
    started_at: float = field(default=0.0)


class Supervisor:
    def __init__(
        self,
        *,
        shutdown_timeout_s: float = 10.0,
        notifier: Notifier | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        healthy_after_s: float = 60.0,
    ) -> None:
        self.shutdown_timeout_s = shutdown_timeout_s
        self.notifier = notifier if notifier is not None else Notifier()
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.healthy_after_s = healthy_after_s
        self.services: dict[str, Service] = {}
        self._closers: list[tuple[str, Callable[[], Awaitable[None] | None]]] = []
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self.stragglers: list[str] = []  # services still running after the shutdown budget
        self._reload = asyncio.Event()
        self._reloaders: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._last_tick = time.monotonic()

    def add(
        self,
        name: str,
        factory: Callable[[], Awaitable[object]],
        *,
        progress: Callable[[], float] | None = None,
        stale_after_s: float = 60.0,
        stopper: Callable[[], None] | None = None,
    ) -> None:
        """Register a service.

        ``progress`` returns the monotonic time of its last progress (watchdog). ``stopper``
        asks the service to finish by itself on shutdown (e.g. the MQTT session publishing
        "offline" and disconnecting cleanly); it gets half the shutdown budget before it is
        cancelled like the others.
        """
        if name in self.services:
            raise ValueError(f"service {name!r} registered twice")
        self.services[name] = Service(name, factory, progress, stale_after_s, stopper)

    def on_reload(self, name: str, reloader: Callable[[], Awaitable[None]]) -> None:
        """Run ``reloader`` on SIGHUP (``systemctl reload``), in registration order."""
        self._reloaders.append((name, reloader))

    def request_reload(self) -> None:
        self._reload.set()

    def on_close(self, name: str, closer: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``closer`` after every service stopped (reverse registration order)."""
        self._closers.append((name, closer))

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    async def wait_started(self) -> None:
        await self._started.wait()

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
            # SIGHUP is always handled: its default action would end the daemon, and systemd
            # counts that as a clean exit -- the ward would silently lose monitoring.
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        tasks: list[asyncio.Task] = []
        try:
            # Tasks are created and reaped by hand rather than in a TaskGroup: leaving a
            # TaskGroup waits for every task, so one service ignoring cancellation would hold
            # back the closers (the outbox commit) forever. Each task is owned here.
            tasks = [asyncio.create_task(self._keep_running(s), name=s.name) for s in self.services.values()]
            watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
            reloads = asyncio.create_task(self._reload_loop(), name="reload")
            self.notifier.ready(status=f"running {len(tasks)} services")
            self._started.set()
            log.info("started", services=sorted(self.services))
            await self._stop.wait()
            self.notifier.stopping()
            log.info("stopping", timeout_s=self.shutdown_timeout_s)
            # Budget: half for services that stop by themselves (MQTT "offline"), the rest for
            # cancellation; closers run after, each bounded too (see _run_closers).
            graceful = [t for t, s in zip(tasks, self.services.values(), strict=True) if s.stopper]
            for service in self.services.values():
                if service.stopper is not None:
                    service.stopper()
            if graceful:
                await asyncio.wait(graceful, timeout=self.shutdown_timeout_s / 4)
            for task in (*tasks, watchdog, reloads):
                task.cancel()
            _done, pending = await asyncio.wait([*tasks, watchdog, reloads], timeout=self.shutdown_timeout_s / 4)
            self.stragglers = sorted(t.get_name() for t in pending)
            if pending:
                log.error("services did not stop in time", services=self.stragglers)
        finally:
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("service ended with an error", service=task.get_name(), exc_info=task.exception())
            if install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
            await self._run_closers()
            log.info("stopped")

    def _on_hup(self) -> None:
        log.info("signal received", signal="SIGHUP")
        self._reload.set()

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            if not self._reloaders:
                log.info("reload requested: nothing to reload (no drug library configured)")
            for name, reloader in self._reloaders:
                try:
                    await reloader()
                except Exception:  # a failed reload keeps the daemon and what is in force
                    log.exception("reload failed", component=name)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal received", signal=sig.name)
        self.request_stop()

    async def _keep_running(self, service: Service) -> None:
        consecutive = 0

        def wait(state: RetryCallState) -> float:
            return jittered(self.backoff_initial_s, self.backoff_max_s)(_attempt(state, consecutive))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            service.restarts += 1
            service.last_crash = f"{type(exc).__name__}: {exc}"
            log.error(
                "service crashed; restarting after backoff",
                service=service.name,
                restarts=service.restarts,
                backoff_s=round(state.upcoming_sleep, 3),
                exc_info=exc,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception), wait=wait, before_sleep=before_sleep, reraise=True
        )
        async for attempt in retrying:
            with attempt:
                service.started_at = time.monotonic()
                try:
                    await service.factory()
                except Exception:
                    ran = time.monotonic() - service.started_at
                    consecutive = 1 if ran >= self.healthy_after_s else consecutive + 1
                    raise
                log.info("service finished", service=service.name)

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval_s()
        period = interval if interval else 1.0
        while True:
            self._last_tick = time.monotonic()
            stale = self.stale_services()
            if interval:
                if stale:
                    log.error("withholding watchdog ping: services made no progress", services=stale)
                else:
                    self.notifier.watchdog()
            await asyncio.sleep(period)

    def stale_services(self) -> list[str]:
        now = time.monotonic()
        return sorted(
            s.name for s in self.services.values() if s.progress is not None and now - s.progress() > s.stale_after_s
        )

    async def _run_closers(self) -> None:
        for name, closer in reversed(self._closers):
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, timeout=self.shutdown_timeout_s / 2)
            except Exception:  # one closer failing must not skip the outbox commit after it
                log.exception("closing failed", component=name)


def _attempt(state: RetryCallState, consecutive: int) -> RetryCallState:
    """A copy of the retry state whose attempt number counts only consecutive quick crashes."""
    state.attempt_number = max(1, consecutive)
    return state
