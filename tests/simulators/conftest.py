"""Run ``async def`` tests in a fresh event loop (no plugin needed).

The same hook lives in main's ``tests/conftest.py``; this copy lets this directory run on
its own branch. ``pytest_pyfunc_call`` is first-result, so only one of them runs a test.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(func(**args))
    return True
