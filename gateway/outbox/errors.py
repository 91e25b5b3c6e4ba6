"""Errors of the durable outbox. The daemon refuses to start on either of the first two:
an operator must look at the file (move it aside, restore, or upgrade pumpgw)."""

from __future__ import annotations

import sqlite3

from gateway.errors import BadInput, PumpgwError, RetryLater


class OutboxError(PumpgwError):
    """Base of every outbox problem."""


class OutboxCorrupt(OutboxError):
    """The SQLite file fails its integrity check or is not a SQLite database."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"outbox {path} is corrupt: {detail} (move it aside and restart; its messages are not lost until you delete it)"
        )


class OutboxAccessError(OutboxError):
    """The file exists but this user may not read (or write) it: a permission problem, not
    corruption -- nothing must be moved aside."""

    def __init__(self, path: str, detail: str, *, write: bool) -> None:
        self.path = path
        self.detail = detail
        self.write = write
        hint = (
            "run this as the service user (e.g. `sudo -u pumpgw pumpgw outbox ...`); "
            "stats, list and show only need read access (group pumpgw)"
            if write
            else "add your user to the service's group (pumpgw) or run as the service user"
        )
        super().__init__(f"outbox {path}: {detail}; the file is not damaged -- {hint}")


class OutboxSchemaError(OutboxError):
    """The file's schema version is newer than this pumpgw, or the file is not an outbox."""

    def __init__(self, path: str, found: int | str, expected: int) -> None:
        self.path = path
        self.found = found
        self.expected = expected
        super().__init__(f"outbox {path}: schema version {found}, expected <= {expected}")


class OutboxClosed(OutboxError):
    """An operation on an outbox after close()."""


class MessageNotFound(OutboxError, BadInput):
    def __init__(self, msg_id: int) -> None:
        self.msg_id = msg_id
        super().__init__(f"no outbox message with id {msg_id}")


class OutboxFull(OutboxError, RetryLater):
    """The file system holding the outbox has no room for this write, even after the reserve
    was released. The caller retries later (events: the pipeline; state changes: the sender)."""

    def __init__(self, path: str, detail: str = "") -> None:
        self.path = path
        super().__init__(f"outbox {path}: the disk is full{': ' + detail if detail else ''}")


class OutboxBusy(OutboxError, RetryLater, sqlite3.OperationalError):
    """SQLite could not complete a write now (database locked, busy, an I/O error): none of it
    is in the file, and the same unit can be written later.

    It is still a ``sqlite3.OperationalError``, so code written against the raw error keeps
    working; new code catches ``RetryLater``.
    """

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"outbox {path}: write failed, retry later: {detail}")
