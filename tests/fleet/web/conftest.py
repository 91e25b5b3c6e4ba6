"""Fixtures for the web UI: the fleet tests' throw-away PostgreSQL (tests/fleet/conftest.py)
filled with the deterministic sample fleet, users of each role, and the UI + JSON API served
by a real uvicorn on a free loopback port (the app `pumpgw fleet` serves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Self

import pytest
import uvicorn
from psycopg_pool import ConnectionPool

from fleet.db.connect import connect
from fleet.web.auth import hash_password
from fleet.web.mount import build_fleet_app
from fleet.web.sample import fill
from fleet.web.settings import WebSettings
from tests.ports import free_port

USERS = {"vera": ("viewer", "vera-pass-1"), "paul": ("pharmacy", "paul-pass-1"), "ada": ("admin", "ada-pass-1")}


@pytest.fixture
def fleet_db(dsn: str) -> str:
    """A fresh migrated database holding the sample fleet; returns its DSN."""
    with connect(dsn) as conn:
        fill(conn)
        conn.commit()
    return dsn


@pytest.fixture(scope="session")
def web_settings() -> WebSettings:
    return WebSettings.model_validate(
        {
            "session_secret": "x" * 40,
            "login_limits": {"max_failures": 3, "window_s": 600},
            "users": [{"name": n, "role": r, "password_hash": hash_password(p)} for n, (r, p) in USERS.items()],
        }
    )


class Server:
    """uvicorn in a thread of the test process, stopped by should_exit (no sleeps to wait on)."""

    def __init__(self, app, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def web(fleet_db: str, web_settings: WebSettings) -> Iterator[Server]:
    pool = ConnectionPool(fleet_db, min_size=1, max_size=4, open=True, kwargs={"options": "-c timezone=UTC"})
    try:
        with Server(build_fleet_app(None, web_settings, pool), free_port()) as server:
            server.dsn = fleet_db  # type: ignore[attr-defined]
            yield server
    finally:
        pool.close()
