"""One daemon per outbox: an advisory ``flock`` on a lock file beside the database.

Two ``pumpgw run`` on one configuration would each claim the same pending rows and deliver
everything twice. SQLite's own locks do not prevent that (each statement is short), so the
daemon holds an exclusive ``fcntl.flock`` on ``<outbox>.lock`` for its whole lifetime. The
kernel releases it when the process dies for any reason (SIGKILL, OOM), so a crash never
leaves a stale lock behind; the PID written into the file is only there to name the holder
in the second instance's error. Operator commands (``pumpgw outbox ...``) do not take the
lock: they are meant to run beside the daemon.

The lock file is created in the outbox's folder, which must exist: a typo in
``outbox.path`` must not silently start a new, empty outbox somewhere else.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from gateway.outbox.errors import OutboxError


class OutboxLocked(OutboxError):
    """Another process holds the outbox (a second daemon on the same configuration)."""

    def __init__(self, path: Path, holder_pid: int | None) -> None:
        self.path = path
        self.holder_pid = holder_pid
        who = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            f"outbox {path} is in use by {who} (lock file {lock_path(path)}); "
            "only one pumpgw daemon may use an outbox -- stop the other one first"
        )


class OutboxPathError(OutboxError):
    """The outbox's folder is missing or not writable."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"outbox {path}: {detail}")


def lock_path(outbox: Path) -> Path:
    return outbox.with_name(outbox.name + ".lock")


class InstanceLock:
    """Held from :meth:`acquire` until :meth:`release` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, outbox: Path) -> InstanceLock:
        outbox = Path(outbox)
        folder = outbox.parent
        if not folder.is_dir():
            raise OutboxPathError(
                outbox,
                f"folder {folder} does not exist (check outbox.path; "
                "pumpgw does not create it, so a typo cannot start an empty outbox)",
            )
        path = lock_path(outbox)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise OutboxPathError(outbox, f"cannot create lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutboxLocked(outbox, holder) from None
            raise OutboxPathError(outbox, f"cannot lock {path}: {exc.strerror or exc}") from None
        try:  # the PID only names the holder in a second instance's error: best effort
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk must not stop the daemon (it runs degraded; gateway.outbox)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def holder_pid(outbox: Path) -> int | None:
    """The PID recorded by the daemon holding ``outbox`` now, or None if nobody holds it."""
    path = lock_path(Path(outbox))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
