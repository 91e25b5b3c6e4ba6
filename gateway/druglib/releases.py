"""Put signed library releases in force: verify, validate, order, persist, report.

One entry point for every channel a release arrives on (MQTT ``{prefix}/library/current``,
the drop folder, the configured file, the stored release at start-up): :meth:`offer`.
A release is put in force only when, in this order:

1. it is no larger than ``library.max_release_bytes`` (checked before anything is parsed);
2. its signature verifies with a trusted key valid at its signing time (:mod:`.trust`);
3. it matches the SHA-256 pin, if one is configured besides the keys;
4. it is newer (higher ``serial``) than the release in force -- an older one only with
   ``allow_downgrade`` (a recall), and then audited as a downgrade;
5. the library validates (schema, units, ``status = released``) and its version and release
   date are the ones the signed metadata names.

Then it is stored durably, swapped in, audited (``drug_library.applied``) and reported
(``on_change``: the retained ``{base}/library`` topic). A refusal leaves the library in force
untouched, is logged at ERROR, audited (``drug_library.refused``) and raised as the gateway
alert ``drug_library_refused`` -- once per distinct release, so a broker that redelivers the
same stale release on every reconnect produces one alert, not a storm. The release in force
arriving again (every reconnect: it is retained) is silent.

The audit callable has the shape of the audit trail's ``append(kind, subject, detail,
actor)``; until it is wired, the daemon passes :func:`log_audit`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog

from gateway.druglib.errors import LibraryError, LibraryNotNewer, LibraryPinMismatch, LibraryTooLarge
from gateway.druglib.holder import ALERT_REFUSED, AUDIT_APPLIED, AUDIT_REFUSED, AlertHook, LibraryHolder
from gateway.druglib.load import LoadedLibrary, load_library_bytes, sha256_of
from gateway.druglib.signing import SignatureError
from gateway.druglib.state import ReleaseState, StoredRelease
from gateway.druglib.trust import TrustList

log = structlog.get_logger("pumpgw.druglib.releases")

AuditHook = Callable[[str, str, dict, str], None]
"""``audit(kind, subject, detail, actor)`` -- the audit trail's append signature."""

_REMEMBERED_REFUSALS = 64


def log_audit(kind: str, subject: str, detail: dict, actor: str = "pumpgw") -> None:
    """Default audit sink until the audit trail is wired: one INFO line per audit row."""
    log.info("audit", kind=kind, subject=subject, actor=actor, **{f"detail_{k}": v for k, v in detail.items()})


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"  # the release in force, delivered again
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class InForce:
    """The signed release in force, as reported on ``{base}/library``."""

    loaded: LoadedLibrary
    serial: int
    version: str
    sha256: str
    signer_key_id: str
    applied_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class OfferResult:
    outcome: Outcome
    in_force: InForce | None
    error: LibraryError | None = None
    downgrade: bool = False  # applied although older than the release in force (allow_downgrade)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class ReleaseApplier:
    def __init__(
        self,
        *,
        trust: TrustList,
        state: ReleaseState,
        holder: LibraryHolder,
        audit: AuditHook = log_audit,
        on_alert: AlertHook | None = None,
        on_change: Callable[[InForce], None] | None = None,
        allow_downgrade: bool = False,
        expected_sha256: str = "",
        max_bytes: int = 2 * 1024 * 1024,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.trust = trust
        self.state = state
        self.holder = holder
        self.audit = audit
        self.on_alert = on_alert
        self.on_change = on_change
        self.allow_downgrade = allow_downgrade
        self.expected_sha256 = expected_sha256
        self.max_bytes = max_bytes
        self.clock = clock
        self.in_force: InForce | None = None
        self._refused: OrderedDict[str, None] = OrderedDict()
        self._lock = asyncio.Lock()

    # ---- entry points --------------------------------------------------------------------

    def restore(self) -> OfferResult | None:
        """At start-up: put the stored release back in force, re-verified with today's trust list.

        If it no longer verifies (its key was revoked), it is refused like any release and the
        gateway runs without it until a trusted release arrives.
        """
        stored = self.state.load()
        if stored is None:
            return None
        result = self._evaluate(
            stored.library, stored.signature, where="stored release (database)", source=stored.source, restoring=stored
        )
        self._after(
            result,
            source="restart",
            where="stored release (database)",
            digest=_digest(stored.library, stored.signature),
        )
        return result

    def offer(self, library: bytes, signature: bytes, *, source: str, where: str) -> OfferResult:
        result = self._evaluate(library, signature, where=where, source=source)
        self._after(result, source=source, where=where, digest=_digest(library, signature))
        return result

    async def offer_async(self, library: bytes, signature: bytes, *, source: str, where: str) -> OfferResult:
        """As :meth:`offer`, with parsing, verification and the durable commit off the loop."""
        async with self._lock:
            result = await asyncio.to_thread(self._evaluate, library, signature, where=where, source=source)
            self._after(result, source=source, where=where, digest=_digest(library, signature))
            return result

    def refuse(self, error: LibraryError, *, source: str, where: str, digest: str) -> OfferResult:
        """Report a release refused before it could be offered (oversized or torn payload)."""
        result = OfferResult(Outcome.REFUSED, self.in_force, error)
        self._after(result, source=source, where=where, digest=digest)
        return result

    def update_trust(self, trust: TrustList, *, allow_downgrade: bool, expected_sha256: str) -> None:
        """After a configuration reload. A release in force whose key is no longer trusted
        stays in force (the previous library is never dropped) but is alerted and audited."""
        self.trust, self.allow_downgrade, self.expected_sha256 = trust, allow_downgrade, expected_sha256
        current = self.in_force
        stored = self.state.load()
        if current is None or stored is None:
            return
        try:
            trust.verify(stored.library, stored.signature, where="release in force", now=self.clock())
        except LibraryError as exc:
            detail = {
                "version": current.version,
                "serial": current.serial,
                "signer_key_id": current.signer_key_id,
                "reason": type(exc).__name__,
                "message": str(exc),
                "still_in_force": True,
            }
            log.error("drug library in force is no longer trusted", **detail)
            self._audit(AUDIT_REFUSED, current.version, detail)
            self._alert({**detail, "source": "reload"})

    # ---- decision (may run in a worker thread: no callbacks here) ------------------------

    def _evaluate(
        self, library: bytes, signature: bytes, *, where: str, source: str, restoring: StoredRelease | None = None
    ) -> OfferResult:
        current = self.in_force
        try:
            if len(library) > self.max_bytes:
                raise LibraryTooLarge(where, len(library), self.max_bytes)
            verified = self.trust.verify(library, signature, where=where, now=self.clock())
            meta = verified.metadata
            if current is not None and verified.sha256 == current.sha256 and meta.serial == current.serial:
                return OfferResult(Outcome.UNCHANGED, current)
            if self.expected_sha256 and sha256_of(library) != self.expected_sha256:
                raise LibraryPinMismatch(where, self.expected_sha256, sha256_of(library))
            downgrade = False
            if current is not None and meta.serial <= current.serial:
                if not self.allow_downgrade or meta.serial == current.serial:
                    raise LibraryNotNewer(where, meta.serial, meta.version, current.serial, current.version)
                downgrade = True
            loaded = load_library_bytes(library, path=Path(where), require_released=True)
            if loaded.version != meta.version or loaded.library.released != meta.released:
                raise SignatureError(
                    where,
                    f"signed metadata names version {meta.version} released {meta.released}, "
                    f"the library says {loaded.version} released {loaded.library.released}",
                )
        except LibraryError as exc:
            return OfferResult(Outcome.REFUSED, current, exc)
        loaded = replace(loaded, sha256=verified.sha256)  # the release's identity: canonical bytes
        if restoring is not None:
            applied_at, src = datetime.fromisoformat(restoring.applied_at), restoring.source
        else:
            applied_at, src = self.clock(), source
            try:
                self.state.save(
                    StoredRelease(
                        meta.serial,
                        meta.version,
                        verified.sha256,
                        meta.signer_key_id,
                        applied_at.isoformat(),
                        src,
                        library,
                        signature,
                    )
                )
            except sqlite3.Error as exc:  # not stored = not applied: a restart must not forget it
                return OfferResult(
                    Outcome.REFUSED,
                    current,
                    LibraryError(f"{where}: cannot store the release in the gateway database: {exc}"),
                )
        new = InForce(loaded, meta.serial, meta.version, verified.sha256, meta.signer_key_id, applied_at, src)
        return OfferResult(Outcome.APPLIED, new, None, downgrade=downgrade)

    # ---- effects (event loop thread) -----------------------------------------------------

    def _after(self, result: OfferResult, *, source: str, where: str, digest: str) -> None:
        if result.outcome is Outcome.UNCHANGED:
            log.debug(
                "drug library release already in force",
                source=source,
                version=result.in_force.version if result.in_force else None,
            )
            return
        if result.outcome is Outcome.APPLIED:
            self._apply(result, source=source, where=where)
            return
        self._refuse(result, source=source, where=where, digest=digest)

    def _apply(self, result: OfferResult, *, source: str, where: str) -> None:
        new = result.in_force
        assert new is not None
        previous = self.in_force
        self.in_force = new
        self.holder.put_in_force(new.loaded)
        downgrade = result.downgrade
        detail = {
            "version": new.version,
            "serial": new.serial,
            "sha256": new.sha256,
            "signer_key_id": new.signer_key_id,
            "source": source,
            "where": where,
            "previous_version": previous.version if previous else None,
            "previous_serial": previous.serial if previous else None,
            "downgrade": downgrade,
        }
        if downgrade:
            log.warning("drug library DOWNGRADED (allow_downgrade is set: recall)", **detail)
        else:
            log.info("drug library release in force", **detail)
        if source != "restart":
            self._audit(AUDIT_APPLIED, new.version, detail)
        if self.on_change is not None:
            self.on_change(new)

    def _refuse(self, result: OfferResult, *, source: str, where: str, digest: str) -> None:
        error = result.error
        assert error is not None
        repeat = digest in self._refused
        self._refused[digest] = None
        self._refused.move_to_end(digest)
        while len(self._refused) > _REMEMBERED_REFUSALS:
            self._refused.popitem(last=False)
        current = self.in_force
        detail = {
            "source": source,
            "where": where,
            "reason": type(error).__name__,
            "message": str(error),
            "in_force_version": current.version if current else None,
            "in_force_serial": current.serial if current else None,
        }
        if isinstance(error, LibraryNotNewer):
            detail.update(version=error.version, serial=error.serial)
        if isinstance(error, SignatureError) and error.key_id:
            detail["signer_key_id"] = error.key_id
        if repeat:
            log.info(
                "drug library release refused again (already reported)",
                source=source,
                where=where,
                reason=type(error).__name__,
            )
            return
        log.error("drug library release refused", **detail)
        self._audit(AUDIT_REFUSED, str(detail.get("version") or where), detail)
        self._alert(detail)

    def _audit(self, kind: str, subject: str, detail: dict) -> None:
        try:
            self.audit(kind, subject, detail, "pumpgw")
        except Exception:  # an audit failure is logged; it must not flip the decision taken
            log.exception("audit write failed", kind=kind, subject=subject)

    def _alert(self, detail: dict) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(ALERT_REFUSED, detail)
        except Exception:
            log.exception("drug library alert hook failed")


def _digest(library: bytes, signature: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(library).digest() + signature).hexdigest()
