"""A throw-away PostgreSQL cluster for tests: initdb + pg_ctl in a temp dir, a free loopback
port, stopped (immediate) at the end. Never the machine's own PostgreSQL service.

initdb refuses to run as root; under root the cluster runs as the ``postgres`` account (or
``nobody``) through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def pg_bin(name: str) -> str | None:
    """Debian installs the server binaries per major version, off PATH; the newest wins."""
    from tests.fleet.pg import pg_bin as find

    return find(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PgCluster:
    host: str
    port: int
    user: str

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname=postgres connect_timeout=10"


@contextmanager
def pg_cluster(tmp: Path) -> Iterator[PgCluster]:
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    prefix: list[str] = []
    user = pwd.getpwuid(os.getuid()).pw_name
    own_dir = None
    if os.getuid() == 0:
        account = next(a for a in ("postgres", "nobody") if _exists(a))
        prefix, user = ["runuser", "-u", account, "--"], account
        # pytest's tmp dirs are private to root: the cluster gets its own directory that the
        # account can reach, removed at the end.
        own_dir = Path(tempfile.mkdtemp(prefix="pumpgw-pg-"))
        own_dir.chmod(0o711)
        tmp = own_dir / "cluster"
        tmp.mkdir()
        pw = pwd.getpwnam(account)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    else:
        tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "pgdata"
    port = _free_port()
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", user, "-A", "trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except subprocess.CalledProcessError as exc:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')[-500:]}") from None
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' -c fsync=off"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(tmp / "pg.log"), "-w", "-t", "60", "start"],
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield PgCluster("127.0.0.1", port, user)
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60
        )
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
        return True
    except KeyError:
        return False
