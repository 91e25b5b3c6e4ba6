"""The gateway's trust list: which pharmacy keys may release a library, and when.

Rule (docs/drug-library.md, "Keys"): a release is trusted when its signature verifies with a
key on the list whose validity window contains the release's signing time (``signed_at``,
inside the signed metadata), and that signing time is not in the future (beyond a small
clock-skew allowance). So *rotation* is a window: a release signed while a key was valid stays
valid after the key's ``valid_until`` (gateways that were offline still accept it), while
the retired key can sign nothing new. *Revocation* is removal from the list: at the next reload
nothing that key ever signed verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.config.model import TrustedKeyConfig
from gateway.druglib.canonical import canonical_sha256
from gateway.druglib.errors import LibraryError
from gateway.druglib.signing import (
    KeyFileError,
    ReleaseMetadata,
    SignatureError,
    key_id_of,
    load_public_key,
    parse_signature_file,
    verify_with,
)

# A signature dated slightly ahead of the gateway's clock is accepted (NTP drift between the
# pharmacy's workstation and the ward host); anything further ahead is refused.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class TrustedKey:
    key_id: str
    public: Ed25519PublicKey
    valid_from: datetime
    valid_until: datetime | None
    file: Path

    def valid_at(self, when: datetime) -> bool:
        return self.valid_from <= when and (self.valid_until is None or when < self.valid_until)


@dataclass(frozen=True, slots=True)
class VerifiedRelease:
    """A release whose signature verified with a trusted key (schema not yet validated)."""

    metadata: ReleaseMetadata
    canonical: bytes
    sha256: str  # of the canonical library bytes


class TrustList:
    def __init__(self, keys: list[TrustedKey], problems: list[LibraryError] | None = None) -> None:
        self.keys = {k.key_id: k for k in keys}
        self.problems = problems or []

    @classmethod
    def from_config(cls, configs: list[TrustedKeyConfig]) -> TrustList:
        """Load the key files; an unusable entry is skipped and reported in ``problems``."""
        keys: list[TrustedKey] = []
        problems: list[LibraryError] = []
        for cfg in configs:
            try:
                public = load_public_key(cfg.file)
            except KeyFileError as exc:
                problems.append(exc)
                continue
            kid = key_id_of(public)
            if cfg.key_id and cfg.key_id != kid:
                problems.append(KeyFileError(str(cfg.file), f"key id is {kid}, the configuration expects {cfg.key_id}"))
                continue
            keys.append(TrustedKey(kid, public, cfg.valid_from, cfg.valid_until, cfg.file))
        return cls(keys, problems)

    def verify(self, library: bytes, signature: bytes, *, where: str, now: datetime) -> VerifiedRelease:
        """Check the signature file against this trust list; raise a :class:`LibraryError`.

        Cheap checks first: the signature file, the key and its window, then canonicalisation
        and the Ed25519 verification.
        """
        sig = parse_signature_file(signature, where=where)
        meta = sig.metadata
        key = self.keys.get(meta.signer_key_id)
        if key is None:
            raise SignatureError(
                where,
                f"signed by key {meta.signer_key_id}, which is not a trusted key of this gateway",
                key_id=meta.signer_key_id,
            )
        if meta.signed_at > now + CLOCK_SKEW:
            raise SignatureError(
                where,
                f"signed_at {meta.signed_at.isoformat()} is in the future (gateway clock {now.isoformat()})",
                key_id=key.key_id,
            )
        if not key.valid_at(meta.signed_at):
            until = key.valid_until.isoformat() if key.valid_until else "open"
            raise SignatureError(
                where,
                f"key {key.key_id} was not valid at signed_at {meta.signed_at.isoformat()} "
                f"(valid {key.valid_from.isoformat()} .. {until})",
                key_id=key.key_id,
            )
        canon, digest = canonical_sha256(library, where=where)
        verify_with(key.public, sig, canon, where=where)
        return VerifiedRelease(meta, canon, digest)
