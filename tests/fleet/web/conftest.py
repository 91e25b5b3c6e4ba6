"""Fixtures for the web UI: a throw-away PostgreSQL cluster (initdb/pg_ctl in a temp dir, on a
free loopback port), a migrated and seeded fleet database per test, and the UI served by a
real uvicorn on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import uvicorn
from psycopg_pool import ConnectionPool

from fleet.web.app import build_web_app
from fleet.web.auth import hash_password
from fleet.web.settings import WebSettings

from .seed import NOW, seed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or f"/usr/lib/postgresql/15/bin/{name}"
    if not Path(found).exists():
        pytest.skip(f"PostgreSQL binary {name} not installed")
    return found


@dataclass
class Postgres:
    port: int
    user: str = "fleet"

    def dsn(self, db: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={db}"


def _as_server_user(argv: list[str]) -> list[str]:
    # initdb refuses to run as root: then the cluster belongs to an unprivileged user.
    if os.geteuid() != 0:
        return argv
    user = "postgres" if shutil.which("runuser") and _has_user("postgres") else "nobody"
    return ["runuser", "-u", user, "--", *argv]


def _has_user(name: str) -> bool:
    import pwd
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    base = tmp_path_factory.mktemp("pg")
    data = base / "data"
    if os.geteuid() == 0:
        base.chmod(0o777)
        for parent in base.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)  # let the server user traverse to it
    subprocess.run(_as_server_user([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "fleet", "--no-sync",
                                    "-E", "UTF8"]), check=True, capture_output=True)
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
    subprocess.run(_as_server_user([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", opts, "-w",
                                    "start"]), check=True, capture_output=True)
    try:
        yield Postgres(port)
    finally:
        subprocess.run(_as_server_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)


_counter = iter(range(10**6))


@pytest.fixture
def fleet_db(postgres: Postgres) -> str:
    """A fresh database with the fleet schema and the seed data; returns its DSN."""
    name = f"fleet_web_{next(_counter)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = postgres.dsn(name)
    with psycopg.connect(dsn) as conn:
        seed(conn)
    return dsn


USERS = {"vera": ("viewer", "vera-pass-1"), "paul": ("pharmacy", "paul-pass-1"), "ada": ("admin", "ada-pass-1")}


@pytest.fixture(scope="session")
def web_settings() -> WebSettings:
    return WebSettings.model_validate({
        "session_secret": "x" * 40,
        "login_limits": {"max_failures": 3, "window_s": 600},
        "users": [{"name": n, "role": r, "password_hash": hash_password(p)} for n, (r, p) in USERS.items()],
    })


class Server:
    def __init__(self, app, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
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
    pool = ConnectionPool(fleet_db, min_size=1, max_size=4, open=True)
    try:
        with Server(build_web_app(web_settings, pool, clock=lambda: NOW), _free_port()) as server:
            server.dsn = fleet_db  # type: ignore[attr-defined]
            yield server
    finally:
        pool.close()
