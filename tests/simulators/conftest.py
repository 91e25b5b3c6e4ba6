"""Pty/socket tests: each one is checked for leaked file descriptors and threads."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _leak_guard(no_leaked_fds_or_threads):
    """Every test here fails if it leaves a file descriptor or thread open."""
    yield
