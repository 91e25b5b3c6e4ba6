"""Fixtures of the fleet tests: a session-wide throw-away PostgreSQL, a fresh database per test,
Mosquitto brokers (the gateway tests' fixture, reused), and the simulator."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="the fleet extra is not installed (pip install -e '.[fleet]')")

import psycopg  # noqa: E402

from fleet.db.connect import connect  # noqa: E402
from fleet.db.migrations import migrate  # noqa: E402
from tests.fleet.pg import Postgres, pg_bin  # noqa: E402
from tests.gateway.mqtt.conftest import broker, make_broker  # noqa: E402,F401


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    if pg_bin("initdb") is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # Not under pytest's tmp_path: as root that is mode 0700, and the server runs as another user.
    pg = Postgres(Path(tempfile.mkdtemp(prefix="pumpgw-fleet-pg-")))
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(pg.workdir, ignore_errors=True)


@pytest.fixture
def dsn(postgres: Postgres) -> str:
    """A fresh, migrated database."""
    url = postgres.new_database()
    with connect(url) as conn:
        migrate(conn)
    return url


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection]:
    conn = connect(dsn)
    yield conn
    conn.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
