"""Errors of the drug-library checker.

Chosen by what the caller does next: a refused file (``LibraryInvalid``,
``LibraryPinMismatch``, ``LibraryUnreadable``) means "keep the previous library in force and
alert"; a unit error (``UnitError``) means "this comparison cannot be made" -- the checker turns
it into a verdict, never into a crash.
"""

from __future__ import annotations

from common.diagnostics import Problem
from gateway.errors import BadInput, PumpgwError


class LibraryError(BadInput):
    """Base of every drug-library error."""


class LibraryProblem(Problem):
    """One thing wrong with a library file: where (JSON path, line when known) and what.

    The shared :class:`common.diagnostics.Problem` without a file name (the refusal names the
    file once): ``line 42: entries[3].dose_limits.soft_max: ...``.
    """

    def __init__(self, json_path: str, message: str, line: int | None = None) -> None:
        super().__init__("", json_path, message, line)

    @property
    def json_path(self) -> str:
        return self.key_text


class LibraryUnreadable(LibraryError):
    """The file cannot be read, is not UTF-8 or is not JSON."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class LibraryInvalid(LibraryError):
    """The file is JSON but not a valid library; ``problems`` lists every finding."""

    def __init__(self, path: str, problems: list[LibraryProblem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s): " + "; ".join(str(p) for p in problems))


class LibraryPinMismatch(LibraryError):
    """The file's SHA-256 is not the one pinned in the gateway configuration."""

    def __init__(self, path: str, expected: str, got: str) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        super().__init__(f"{path}: SHA-256 pin mismatch: expected {expected}, got {got}")


class UnitError(LibraryError):
    """A unit string is not one the checker knows."""

    def __init__(self, unit: str, reason: str) -> None:
        self.unit = unit
        self.reason = reason
        super().__init__(f"unit {unit!r}: {reason}")


class UnitFamilyMismatch(UnitError):
    """Two quantities of different unit families (mass vs units vs mEq vs mmol) were combined.

    There is no drug-independent factor between them (reference drug-library.md §3.2), so the
    engine refuses instead of guessing.
    """

    def __init__(self, left: str, right: str) -> None:
        self.left = left
        self.right = right
        PumpgwError.__init__(self, f"cannot combine {left!r} with {right!r}: different unit families")
        self.unit = left
        self.reason = f"different unit family from {right!r}"


class LibraryTooLarge(LibraryError):
    """A release (file or MQTT payload) is larger than ``library.max_release_bytes``; refused
    before a single byte of it is parsed."""

    def __init__(self, where: str, size: int, limit: int) -> None:
        self.where = where
        self.size = size
        self.limit = limit
        super().__init__(f"{where}: {size} bytes, more than the {limit} bytes allowed (library.max_release_bytes)")


class LibraryNotNewer(LibraryError):
    """A signed release is not newer than the one in force (and no downgrade is allowed)."""

    def __init__(self, where: str, serial: int, version: str, in_force_serial: int, in_force_version: str) -> None:
        self.where = where
        self.serial = serial
        self.version = version
        self.in_force_serial = in_force_serial
        self.in_force_version = in_force_version
        super().__init__(
            f"{where}: release {version} (serial {serial}) is not newer than the library in force "
            f"{in_force_version} (serial {in_force_serial})"
        )
