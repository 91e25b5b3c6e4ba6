"""Shared fixtures.

Tests use real parts: pseudo-terminals, loopback sockets, SQLite files in tmp_path,
subprocesses. Subprocesses run ``python -m gateway`` with this interpreter so the tests do
not depend on a console script being on PATH.
"""

from __future__ import annotations

import os
import sys
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
