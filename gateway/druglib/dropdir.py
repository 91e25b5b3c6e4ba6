"""The offline way in: signed releases dropped into a folder (``library.watch_dir``).

A release is two files side by side: ``NAME.json`` (the library) and ``NAME.json.sig`` (its
signature, from ``pumpgw library sign``). The folder is polled; a pair that is new or changed
(size or modification time) is offered to the :class:`ReleaseApplier`, lowest release serial
first, so dropping several releases at once ends with the newest in force. A file larger than
``max_release_bytes`` is refused from its size alone, unread. Copy both files in, then
rename them into place (or copy the signature last): a half-copied file is refused, and
offered again when it changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import structlog

from gateway.druglib.errors import LibraryTooLarge, LibraryUnreadable
from gateway.druglib.releases import ReleaseApplier
from gateway.druglib.signing import MAX_SIGNATURE_FILE_BYTES, SignatureFile

log = structlog.get_logger("pumpgw.druglib.dropdir")

Stamp = tuple[int, int, int, int]  # library size, mtime; signature size, mtime


class DropFolder:
    def __init__(self, folder: Path, applier: ReleaseApplier, *, max_bytes: int, interval_s: float = 2.0) -> None:
        self.folder = Path(folder)
        self.applier = applier
        self.max_bytes = max_bytes
        self.interval_s = interval_s
        self._seen: dict[Path, Stamp] = {}
        self._missing_logged = False

    async def run(self) -> None:
        """Supervised task: poll the folder until cancelled."""
        while True:
            await self.scan()
            await asyncio.sleep(self.interval_s)

    async def scan(self) -> int:
        """Offer every new or changed release; return how many were offered."""
        changed = await asyncio.to_thread(self._changed)
        for path, stamp, _serial in sorted(changed, key=lambda c: (c[2], c[0].name)):
            self._seen[path] = stamp
            where = str(path)
            if stamp[0] > self.max_bytes:
                self.applier.refuse(
                    LibraryTooLarge(where, stamp[0], self.max_bytes),
                    source="watch_dir",
                    where=where,
                    digest=hashlib.sha256(f"{path}{stamp}".encode()).hexdigest(),
                )
                continue
            try:
                library, signature = await asyncio.to_thread(_read_pair, path)
            except LibraryUnreadable as exc:
                self.applier.refuse(
                    exc, source="watch_dir", where=where, digest=hashlib.sha256(f"{path}{stamp}".encode()).hexdigest()
                )
                continue
            await self.applier.offer_async(library, signature, source="watch_dir", where=where)
        return len(changed)

    def _changed(self) -> list[tuple[Path, Stamp, int]]:
        try:
            names = sorted(os.listdir(self.folder))
        except OSError as exc:
            if not self._missing_logged:
                log.warning("library drop folder unreadable", folder=str(self.folder), error=exc.strerror or str(exc))
                self._missing_logged = True
            return []
        self._missing_logged = False
        out = []
        for name in names:
            if not name.endswith(".json"):
                continue
            lib, sig = self.folder / name, self.folder / (name + ".sig")
            try:
                ls, ss = os.stat(lib), os.stat(sig)
            except OSError:
                continue  # no signature (yet): not a release
            stamp = (ls.st_size, ls.st_mtime_ns, ss.st_size, ss.st_mtime_ns)
            if self._seen.get(lib) != stamp:
                out.append((lib, stamp, _serial_of(sig)))
        return out


def _serial_of(sig: Path) -> int:
    """The release serial named in a signature file (for ordering only; -1 if unreadable)."""
    try:
        data = sig.read_bytes()[: MAX_SIGNATURE_FILE_BYTES + 1]
        return SignatureFile.model_validate_json(data).metadata.serial
    except Exception:  # ordering only: the offer reports what is wrong with it
        return -1


def _read_pair(path: Path) -> tuple[bytes, bytes]:
    try:
        return path.read_bytes(), Path(str(path) + ".sig").read_bytes()[: MAX_SIGNATURE_FILE_BYTES + 1]
    except OSError as exc:
        raise LibraryUnreadable(str(path), f"cannot read: {exc.strerror or exc}") from None
