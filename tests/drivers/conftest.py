"""Async test runner and a leak guard for the pty/socket tests.

The ``async def`` hook is the same as main's ``tests/conftest.py``; this copy lets this
directory run on its own branch (``pytest_pyfunc_call`` is first-result: one of them runs).
The leak guard fails any test that leaves a file descriptor or a thread behind (pymodbus's
idea): a pty or reader thread left open is exactly the bug a long-running gateway cannot have.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(func(**args))
    return True


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaked_fds_or_threads():
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
