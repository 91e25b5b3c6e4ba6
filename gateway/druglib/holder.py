"""Keep one library in force; reload on demand (SIGHUP) or when the file changes.

A file that fails validation or the SHA-256 pin is refused: the previous library stays in
force and the refusal is reported -- in the :class:`ReloadResult`, in the log, and through the
``on_alert`` hook (design.md §2 inv. 6). The same refused bytes are reported once, not on every
poll. Reading and validating run in a worker thread so a large file never stalls the event
loop; the swap of the library in force happens on the caller's thread.
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from common.textlimits import FileTooLarge, read_bounded
from gateway.druglib.errors import LibraryError, LibraryInvalid, LibraryPinMismatch, LibraryUnreadable
from gateway.druglib.load import MAX_LIBRARY_BYTES, LoadedLibrary, load_library_bytes, sha256_of

log = structlog.get_logger("pumpgw.druglib")

AlertHook = Callable[[str, dict], None]
ALERT_REFUSED = "drug_library_refused"


# audit-trail kinds for a library put in force or refused (pinned file or signed release)
AUDIT_APPLIED = "drug_library.applied"
AUDIT_REFUSED = "drug_library.refused"


class ReloadStatus(enum.StrEnum):
    LOADED = "loaded"  # a new library is in force
    UNCHANGED = "unchanged"  # same bytes as the library in force
    REFUSED = "refused"  # invalid, unreadable or not the pinned file; the previous library stays


@dataclass(frozen=True, slots=True)
class ReloadResult:
    status: ReloadStatus
    in_force: LoadedLibrary | None
    error: LibraryError | None = None

    @property
    def refused(self) -> bool:
        return self.status is ReloadStatus.REFUSED


class LibraryHolder:
    """Owns the library in force for the daemon. ``current`` is ``None`` until a load succeeds."""

    def __init__(
        self,
        path: Path,
        *,
        expected_sha256: str = "",
        on_alert: AlertHook | None = None,
        audit: Callable[[str, str, dict, str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.expected_sha256 = expected_sha256
        self.on_alert = on_alert
        # the audit trail's append (gateway/audit): every library put in force or refused
        self.audit = audit
        self._current: LoadedLibrary | None = None
        self._last_refused_sha: str | None = None
        self._last_stat: tuple[int, int, str] | None = None
        self._polled = False

    @property
    def current(self) -> LoadedLibrary | None:
        return self._current

    def put_in_force(self, loaded: LoadedLibrary) -> None:
        """Swap in a library another component verified (a signed release, gateway.druglib.releases)."""
        self._current = loaded
        self._last_refused_sha = None

    def reload(self) -> ReloadResult:
        """Read the file now and put it in force if valid (call from the SIGHUP handler)."""
        return self._apply(*self._read())

    async def reload_async(self) -> ReloadResult:
        return self._apply(*await asyncio.to_thread(self._read))

    async def watch(self, interval_s: float = 2.0) -> None:
        """Poll size, mtime and hash; reload when they change. Runs until cancelled.

        Survives any file: whatever a reload raises beyond the loader's own errors is a
        refusal like any other (logged, alerted once per content), never the end of the watch
        -- a watcher that died once would silently ignore every later fix of the file.
        """
        while True:
            try:
                changed = await asyncio.to_thread(self._stat_changed)
                if changed:
                    await self.reload_async()
            except Exception as exc:  # noqa: BLE001 -- the watch must outlive any file
                self._apply(None, LibraryUnreadable(str(self.path), f"unexpected {type(exc).__name__} while reading"))
            await asyncio.sleep(interval_s)

    # -- internals ------------------------------------------------------------------------
    def _stat_changed(self) -> bool:
        """True when size, mtime or content differ from the last poll (a missing file: once)."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, sha256_of(read_bounded(self.path, MAX_LIBRARY_BYTES)))
        except FileTooLarge:
            stamp = (st.st_mtime_ns, st.st_size, "too large")
        except OSError:
            stamp = None
        if stamp == self._last_stat and self._polled:
            return False
        self._last_stat = stamp
        self._polled = True
        return True

    def _read(self) -> tuple[str | None, LoadedLibrary | LibraryError]:
        try:
            data = read_bounded(self.path, MAX_LIBRARY_BYTES)
        except FileTooLarge as exc:
            return None, LibraryUnreadable(str(self.path), f"cannot read file: {exc}")
        except OSError as exc:
            return None, LibraryUnreadable(str(self.path), f"cannot read file: {exc.strerror or exc}")
        digest = sha256_of(data)
        if (
            self._current is not None
            and digest == self._current.sha256
            and (not self.expected_sha256 or digest == self.expected_sha256)
        ):
            return digest, self._current
        try:
            return digest, load_library_bytes(
                data, path=self.path, expected_sha256=self.expected_sha256, require_released=True
            )
        except LibraryError as exc:
            return digest, exc
        except Exception as exc:  # noqa: BLE001 -- a loader bug must refuse the file, not kill the watch
            return digest, LibraryUnreadable(str(self.path), f"cannot be loaded: {type(exc).__name__}")

    def _apply(self, digest: str | None, outcome: LoadedLibrary | LibraryError) -> ReloadResult:
        if isinstance(outcome, LoadedLibrary):
            if outcome is self._current:
                return ReloadResult(ReloadStatus.UNCHANGED, outcome)
            previous = self._current
            self._current = outcome
            self._last_refused_sha = None
            log.info(
                "drug library in force",
                path=str(self.path),
                version=outcome.version,
                sha256=outcome.sha256,
                previous=previous.version if previous else None,
            )
            self._audit(
                AUDIT_APPLIED,
                outcome.version,
                {
                    "version": outcome.version,
                    "sha256": outcome.sha256,
                    "source": "file",
                    "path": str(self.path),
                    "previous_version": previous.version if previous else None,
                    "previous_sha256": previous.sha256 if previous else None,
                },
            )
            return ReloadResult(ReloadStatus.LOADED, outcome)
        repeat = digest is not None and digest == self._last_refused_sha
        self._last_refused_sha = digest
        details = self._alert_details(outcome, digest)
        if not repeat:
            log.error("drug library refused", **details)
            self._alert(details)
            self._audit(AUDIT_REFUSED, str(self.path), {k: v for k, v in details.items() if k != "problems"})
        return ReloadResult(ReloadStatus.REFUSED, self._current, outcome)

    def _alert_details(self, error: LibraryError, digest: str | None) -> dict:
        details: dict = {
            "path": str(self.path),
            "reason": type(error).__name__,
            "message": str(error),
            "sha256": digest,
            "in_force_version": self._current.version if self._current else None,
            "in_force_sha256": self._current.sha256 if self._current else None,
        }
        if isinstance(error, LibraryInvalid):
            details["problems"] = [str(p) for p in error.problems]
        if isinstance(error, LibraryPinMismatch):
            details["expected_sha256"] = error.expected
        return details

    def _audit(self, kind: str, subject: str, detail: dict) -> None:
        if self.audit is None:
            return
        try:
            self.audit(kind, subject, detail, "pumpgw")
        except Exception as exc:  # the change itself stands; a failed audit write is loud
            log.error("drug library audit row not written", kind=kind, error=str(exc), error_type=type(exc).__name__)

    def _alert(self, details: dict) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(ALERT_REFUSED, details)
        except Exception:  # a listener's failure must not keep the refusal from being logged
            log.exception("drug library alert hook failed", path=str(self.path))
