"""Space held back for a full disk: a pre-allocated file released when the disk fills.

Why a file: SQLite needs free blocks to commit (new pages, WAL frames) and even to record
that a message was delivered. When something fills the file system -- the outbox itself
during a long outage, or a runaway log -- the next commit fails with "database or disk is
full" and, without room, no alarm can be stored and no delivery recorded. A reserve file
of ``reserve_bytes`` next to the outbox is allocated while there is space; deleting it
when the disk is full gives SQLite exactly that much room at once, so alarms and events
still commit while the outbox runs degraded (see :mod:`gateway.outbox.store`). It is
re-created as soon as the file system has room for it again.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

SQLITE_FULL = 13
SQLITE_IOERR = 10


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means "no space left" (SQLite's SQLITE_FULL, or an I/O error on write)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        return code in (SQLITE_FULL, SQLITE_IOERR) or "disk is full" in str(exc)
    return False


def free_bytes(path: Path) -> int:
    """Bytes available to this process on the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskReserve:
    """``<outbox>.reserve``: present while there is room, deleted when the disk is full."""

    def __init__(self, outbox_path: Path, size: int) -> None:
        self.path = Path(outbox_path).with_name(Path(outbox_path).name + ".reserve")
        self.size = size

    @property
    def present(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def ensure(self) -> bool:
        """Allocate the reserve if missing; False if the file system has no room for it."""
        if self.size <= 0 or self.present:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse file
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    os.lseek(fd, 0, os.SEEK_SET)
                    chunk = b"\0" * 65536
                    for _ in range(0, self.size, len(chunk)):
                        os.write(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.release()  # a partial reserve is no reserve: leave the room to SQLite
            return False
        return True

    def release(self) -> bool:
        """Delete the reserve; True if there was one to give back."""
        try:
            had = self.path.stat().st_size > 0
            self.path.unlink()
            return had
        except FileNotFoundError:
            return False
