"""Shared fixtures.

Tests use real parts: pseudo-terminals, loopback sockets, SQLite files in tmp_path,
subprocesses. Subprocesses run ``python -m gateway`` with this interpreter so the tests do
not depend on a console script being on PATH.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def pumpgw_cmd() -> list[str]:
    return [sys.executable, "-m", "gateway"]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return env


@pytest.fixture
def daemon_logs():
    """What the daemon's loggers (gateway.log.get_logger, structlog) said during the test:
    one dict per line (``event``, ``log_level`` and the fields), every level, whatever
    logging configuration an earlier test left behind -- caplog sees structlog's lines only
    when structlog happens to be configured to write through the standard library."""
    from structlog.testing import capture_logs

    with capture_logs() as entries:
        yield entries


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """Run ``async def`` tests in a fresh event loop (no plugin needed).

    Each test gets its own loop via ``asyncio.run``, which also cancels and awaits every task
    the test left behind -- a leaked task shows up as a warning or a hang, not silently.
    """
    import asyncio
    import inspect

    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(func(**args))
    return True


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaked_fds_or_threads():
    """Fail a test that leaves a file descriptor or a thread behind (pymodbus's idea).

    A pty, socket or reader thread left open is exactly the bug a long-running gateway
    cannot have. Directories with I/O-heavy tests make it autouse in their conftest.
    """
    fds, threads = _open_fds(), set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0  # executor threads finish shutting down asynchronously
    while True:
        leaked_threads = {t.name for t in set(threading.enumerate()) - threads if t.is_alive()}
        leaked_fds = {fd for fd in _open_fds() - fds if os.path.exists(f"/proc/self/fd/{fd}")}
        if not (leaked_threads or leaked_fds) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not leaked_fds, f"file descriptors left open: {sorted(leaked_fds)}"
    assert not leaked_threads, f"threads left running: {sorted(leaked_threads)}"
