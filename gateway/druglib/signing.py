"""Signed drug-library releases: Ed25519 keys, key ids, the detached signature file.

Why Ed25519 through the ``cryptography`` package rather than our own code: signature
verification is exactly the kind of code that must not be home-made (constant-time
arithmetic, malleability checks, RFC 8032 test vectors); ``cryptography`` wraps OpenSSL's
audited implementation, and Ed25519 has no parameters to get wrong (no hash choice, no
padding, deterministic signatures, 32-byte keys that fit in a configuration review).

What is signed (the *signed message*)::

    b"pumpgw-library-release/1\\n" + canonical(metadata JSON) + b"\\n" + canonical(library)

``canonical`` is :func:`gateway.druglib.canonical.canonical_bytes`. The metadata (version,
release serial, release date, signing time, signer key id, library SHA-256) is inside the
signed message, so none of it can be changed without breaking the signature.

The detached signature file (``LIBRARY.json.sig``) is JSON::

    {"format": "pumpgw-library-signature/1",
     "metadata": {"version": "...", "serial": 202612061300, "released": "2026-12-06",
                  "signed_at": "2026-12-06T13:00:00+00:00", "signer_key_id": "3f2a...",
                  "library_sha256": "<SHA-256 of the canonical library>"},
     "signature": "<base64 Ed25519 signature of the signed message>"}

A key id is the first 16 hex digits of the SHA-256 of the raw 32-byte public key: short
enough to read aloud, long enough that two keys of one region never collide by accident.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from gateway.druglib.canonical import canonical_bytes, canonical_sha256
from gateway.druglib.errors import LibraryError

SIGNATURE_FORMAT: Literal["pumpgw-library-signature/1"] = "pumpgw-library-signature/1"
_DOMAIN = b"pumpgw-library-release/1\n"
MAX_SIGNATURE_FILE_BYTES = 16 * 1024


class SignatureError(LibraryError):
    """A release is refused for a reason of trust: bad signature file, unknown or expired
    key, a signature that does not verify, or metadata that contradicts the library."""

    def __init__(self, where: str, reason: str, *, key_id: str | None = None) -> None:
        self.where = where
        self.reason = reason
        self.key_id = key_id
        super().__init__(f"{where}: {reason}")


class KeyFileError(LibraryError):
    """A key file cannot be read or is not an Ed25519 key of the expected kind."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ReleaseMetadata(BaseModel):
    """Release facts inside the signed message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="The library's own version (must equal its 'version').")
    serial: int = Field(ge=0, description="Release order: a gateway applies only a higher serial than in force.")
    released: date = Field(description="The library's release date (must equal its 'released').")
    signed_at: AwareDatetime = Field(description="When the pharmacy signed; the key must be valid at this time.")
    signer_key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    library_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the canonical library bytes.")


class SignatureFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["pumpgw-library-signature/1"]
    metadata: ReleaseMetadata
    signature: str = Field(description="Base64 (RFC 4648) Ed25519 signature of the signed message.")


# ---- keys -----------------------------------------------------------------------------


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key() -> tuple[bytes, bytes, str]:
    """A new key pair as (private PEM, public PEM, key id)."""
    private = Ed25519PrivateKey.generate()
    priv_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return priv_pem, pub_pem, key_id_of(private.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = _read_key(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(str(path), f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(str(path), f"is a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(str(path), f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(str(path), f"is a {type(key).__name__}, not an Ed25519 public key")
    return key


def _read_key(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot read key file: {exc.strerror or exc}") from None


# ---- signing and verifying ------------------------------------------------------------


def signed_message(metadata: ReleaseMetadata, canonical_library: bytes) -> bytes:
    """The bytes an Ed25519 signature covers. The metadata is written field by field with
    fixed formats (ISO 8601 via ``isoformat``), never by a library's serialiser, so a signature
    made by one pumpgw version verifies on every other."""
    fields = {
        "library_sha256": metadata.library_sha256,
        "released": metadata.released.isoformat(),
        "serial": metadata.serial,
        "signed_at": metadata.signed_at.isoformat(),
        "signer_key_id": metadata.signer_key_id,
        "version": metadata.version,
    }
    meta = canonical_bytes(json.dumps(fields, ensure_ascii=False).encode("utf-8"))
    return _DOMAIN + meta + b"\n" + canonical_library


def sign_library(
    library: bytes,
    key: Ed25519PrivateKey,
    *,
    version: str,
    released: date,
    serial: int,
    signed_at: datetime | None = None,
) -> bytes:
    """The detached signature file for ``library`` (bytes of the JSON file)."""
    canon, digest = canonical_sha256(library)
    metadata = ReleaseMetadata(
        version=version,
        serial=serial,
        released=released,
        signed_at=(signed_at or datetime.now(UTC)).replace(microsecond=0),
        signer_key_id=key_id_of(key.public_key()),
        library_sha256=digest,
    )
    signature = key.sign(signed_message(metadata, canon))
    sig = SignatureFile(format=SIGNATURE_FORMAT, metadata=metadata, signature=base64.b64encode(signature).decode())
    return (json.dumps(sig.model_dump(mode="json"), indent=2) + "\n").encode("utf-8")


def parse_signature_file(data: bytes, *, where: str) -> SignatureFile:
    """Decode a signature file; every defect is a :class:`SignatureError` naming ``where``."""
    if len(data) > MAX_SIGNATURE_FILE_BYTES:
        raise SignatureError(where, f"signature file is {len(data)} bytes (at most {MAX_SIGNATURE_FILE_BYTES})")
    try:
        return SignatureFile.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise SignatureError(where, f"signature file is invalid at {loc}: {first['msg']}") from None


def signature_bytes(sig: SignatureFile, *, where: str) -> bytes:
    try:
        raw = base64.b64decode(sig.signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(where, "signature is not valid base64") from None
    if len(raw) != 64:
        raise SignatureError(where, f"signature is {len(raw)} bytes, an Ed25519 signature has 64")
    return raw


def verify_with(public: Ed25519PublicKey, sig: SignatureFile, canonical_library: bytes, *, where: str) -> None:
    """Raise :class:`SignatureError` unless ``sig`` is ``public``'s signature over this library."""
    raw = signature_bytes(sig, where=where)
    if hashlib.sha256(canonical_library).hexdigest() != sig.metadata.library_sha256:
        raise SignatureError(
            where,
            "library content does not match the signed SHA-256 (altered after signing)",
            key_id=sig.metadata.signer_key_id,
        )
    try:
        public.verify(raw, signed_message(sig.metadata, canonical_library))
    except InvalidSignature:
        raise SignatureError(where, "signature does not verify", key_id=sig.metadata.signer_key_id) from None
