"""A throw-away PostgreSQL cluster (initdb + pg_ctl in a temp dir, free loopback port).

Unix socket in the temp dir too, so nothing touches the machine's own PostgreSQL. PostgreSQL
refuses to run as root: as root, the server runs as the ``postgres`` (or ``nobody``) user via
``runuser``, in a temp dir that user owns. It can be
restarted (reliability tests) and hands out fresh databases (one per test that needs a
clean slate) so tests do not see each other's rows.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.ports import free_port


def _server_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither user 'postgres' nor 'nobody' exists to run PostgreSQL")


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda d: int(d.parent.name), reverse=True)
    for bin_dir in versions:
        candidate = bin_dir / name
        if candidate.exists():
            return str(candidate)
    return None


@dataclass
class Postgres:
    workdir: Path
    port: int = field(default_factory=free_port)
    user: str = "fleet"
    _dbs: int = 0

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", _server_user(), "--", *argv]

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def init(self) -> None:
        initdb = pg_bin("initdb")
        assert initdb
        if os.geteuid() == 0:
            owner = pwd.getpwnam(_server_user())
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            self._as_owner(
                [initdb, "-D", str(self.data), "-U", self.user, "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]
            ),
            check=True,
            capture_output=True,
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.workdir}'\nfsync = off\nsynchronous_commit = on\n"
                "full_page_writes = off\nshared_buffers = 64MB\nmax_connections = 60\n"
            )

    def start(self) -> None:
        pg_ctl = pg_bin("pg_ctl")
        assert pg_ctl
        subprocess.run(
            self._as_owner(
                [pg_ctl, "-D", str(self.data), "-l", str(self.workdir / "pg.log"), "-w", "-t", "30", "start"]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        pg_ctl = pg_bin("pg_ctl")
        assert pg_ctl
        subprocess.run(
            self._as_owner([pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"]), check=False, capture_output=True
        )

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def new_database(self) -> str:
        self._dbs += 1
        name = f"fleet{os.getpid()}_{self._dbs}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn(), connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
