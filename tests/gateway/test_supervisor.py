"""The supervisor owns every task: restarts crashed services, stops cleanly, talks to systemd."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from gateway.sdnotify import Notifier
from gateway.supervisor import Supervisor


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A real AF_UNIX datagram socket standing in for systemd's notify socket."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def test_crashed_service_is_restarted_with_backoff_and_others_keep_running():
    sup = Supervisor(backoff_initial_s=0.01, backoff_max_s=0.05, notifier=Notifier(""))
    runs = {"flaky": 0, "steady": 0}

    async def flaky():
        runs["flaky"] += 1
        await asyncio.sleep(0)
        raise RuntimeError("link exploded")

    async def steady():
        while True:
            runs["steady"] += 1
            await asyncio.sleep(0.01)

    sup.add("flaky", flaky)
    sup.add("steady", steady)
    runner = asyncio.create_task(sup.run(install_signal_handlers=False))
    await asyncio.sleep(0.5)
    sup.request_stop()
    await asyncio.wait_for(runner, 5)
    assert runs["flaky"] >= 3
    # stopped either while a run was under way (one more run than restarts) or in a backoff
    assert runs["flaky"] - sup.services["flaky"].restarts in (0, 1)
    assert "link exploded" in sup.services["flaky"].last_crash
    assert runs["steady"] > 10


async def test_stop_cancels_services_then_runs_closers_in_reverse_order():
    sup = Supervisor(notifier=Notifier(""))
    order: list[str] = []

    async def service():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            order.append("service cancelled")
            raise

    async def close_outbox():
        order.append("outbox closed")

    sup.add("svc", service)
    sup.on_close("outbox", close_outbox)
    sup.on_close("links", lambda: order.append("links closed"))
    runner = asyncio.create_task(sup.run(install_signal_handlers=False))
    await sup.wait_started()
    sup.request_stop()
    await asyncio.wait_for(runner, 5)
    assert order == ["service cancelled", "links closed", "outbox closed"]


async def test_service_ignoring_cancellation_does_not_hold_back_the_closers():
    """A service that swallows cancellation is reported, and the outbox still gets closed in time."""
    sup = Supervisor(shutdown_timeout_s=0.4, notifier=Notifier(""))
    closed: list[float] = []
    release = asyncio.Event()

    async def stubborn():
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # a bug we must survive: cancellation swallowed

    sup.add("stubborn", stubborn)
    sup.on_close("outbox", lambda: closed.append(time.monotonic()))
    runner = asyncio.create_task(sup.run(install_signal_handlers=False))
    await sup.wait_started()
    started = time.monotonic()
    sup.request_stop()
    await asyncio.wait_for(runner, 5)
    assert closed and closed[0] - started < 1.0
    assert sup.stragglers == ["stubborn"]
    release.set()  # let the test's own loop finish


async def test_ready_and_stopping_are_sent_to_notify_socket(notify_socket):
    sup = Supervisor()
    sup.add("idle", lambda: asyncio.sleep(3600))
    runner = asyncio.create_task(sup.run(install_signal_handlers=False))
    await sup.wait_started()
    await asyncio.sleep(0.05)
    assert any("READY=1" in m for m in drain(notify_socket))
    sup.request_stop()
    await asyncio.wait_for(runner, 5)
    assert any("STOPPING=1" in m for m in drain(notify_socket))


async def test_watchdog_pings_only_while_services_make_progress(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # ping every 50 ms
    last = {"t": time.monotonic()}
    stalled = asyncio.Event()

    async def poller():
        while not stalled.is_set():
            last["t"] = time.monotonic()
            await asyncio.sleep(0.01)
        await asyncio.sleep(3600)  # a hung read: no progress any more

    sup = Supervisor()
    sup.add("poller", poller, progress=lambda: last["t"], stale_after_s=0.2)
    runner = asyncio.create_task(sup.run(install_signal_handlers=False))
    await asyncio.sleep(0.4)
    healthy = [m for m in drain(notify_socket) if m == "WATCHDOG=1"]
    stalled.set()
    await asyncio.sleep(0.35)  # let the progress go stale
    drain(notify_socket)
    await asyncio.sleep(0.4)
    after_stall = [m for m in drain(notify_socket) if m == "WATCHDOG=1"]
    sup.request_stop()
    await asyncio.wait_for(runner, 5)
    assert len(healthy) >= 4
    assert after_stall == []
    assert sup.stale_services() == ["poller"]


def test_notifier_is_a_noop_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert n.ready() is False


def test_notifier_reaches_abstract_namespace_socket(monkeypatch):
    name = f"pumpgw-test-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        n = Notifier("@" + name)
        assert n.watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
        n.close()
    finally:
        sock.close()


def test_an_outbox_upgrade_before_ready_extends_the_start_timeout(notify_socket, tmp_path):
    from gateway.daemon import _extend_start_timeout_for_upgrade
    from gateway.outbox import schema

    path = tmp_path / "o.db"
    _extend_start_timeout_for_upgrade(path, None)  # no file yet: nothing long to do
    schema.connect(path).close()
    _extend_start_timeout_for_upgrade(path, None)  # current schema: nothing to upgrade
    assert drain(notify_socket) == []
    conn = schema.connect(path)
    conn.execute("PRAGMA user_version=5")  # a file written by the previous release
    conn.close()
    _extend_start_timeout_for_upgrade(path, None)
    [message] = drain(notify_socket)
    fields = dict(line.split("=", 1) for line in message.split("\n"))
    assert int(fields["EXTEND_TIMEOUT_USEC"]) >= 60_000_000 and "upgrading the outbox" in fields["STATUS"]
