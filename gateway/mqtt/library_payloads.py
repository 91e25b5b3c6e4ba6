"""Payloads of the drug-library topics (docs/mqtt.md, "Drug library distribution").

``{prefix}/library/current`` (retained, published by the pharmacy or the fleet service)::

    {"schema_version": 1, "published_at": "...", "signature": {<the detached signature file>},
     "library": "<the library file, as text>"}

The gateway trusts nothing here but the signature: ``signature.metadata`` is readable by any
consumer (what is the current release?), and a gateway verifies it and the library before
use. The library travels as a JSON string (not a nested object) so its bytes arrive exactly
as signed; the signature covers the canonical form anyway.

``{base}/library`` (retained, published by each gateway): the release in force -- the
uptake report reads it.

Decoding is bounded: the payload's size is checked before any byte is parsed.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from gateway.druglib.errors import LibraryError, LibraryTooLarge
from gateway.druglib.signing import SignatureFile

SCHEMA_VERSION = 1


class ReleaseMessageError(LibraryError):
    """A ``library/current`` payload that is not a release message (torn, truncated, wrong shape)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class LibraryReleasePayload(BaseModel):
    """``{prefix}/library/current``: the current signed release, retained."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # consumers ignore unknown fields

    schema_version: int = Field(description="1; a gateway ignores a version it does not know.")
    published_at: AwareDatetime | None = None
    signature: SignatureFile = Field(description="The detached signature file (pumpgw library sign).")
    library: str = Field(description="The library JSON file as text (UTF-8).")


class LibraryInForcePayload(BaseModel):
    """``{prefix}/{site}/{gateway}/library``: the signed release in force on this gateway, retained."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    site: str
    gateway: str
    version: str = Field(description="Library version in force (what pumps should report).")
    serial: int = Field(description="Release serial from the signed metadata.")
    sha256: str = Field(description="SHA-256 of the canonical library bytes (docs/drug-library.md).")
    signer_key_id: str
    applied_at: AwareDatetime = Field(description="When this gateway put it in force.")
    source: str = Field(description="How it arrived: mqtt, watch_dir, file (local path), restart.")


def encode_release(library: bytes, signature: bytes, *, published_at: datetime) -> bytes:
    """The ``library/current`` payload for a library file and its signature file."""
    sig = SignatureFile.model_validate_json(signature)
    body = {
        "schema_version": SCHEMA_VERSION,
        "published_at": published_at.isoformat(),
        "signature": sig.model_dump(mode="json"),
        "library": library.decode("utf-8"),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_release(payload: bytes, *, where: str, max_bytes: int) -> tuple[bytes, bytes]:
    """``(library bytes, signature file bytes)`` of a release message, or a :class:`LibraryError`.

    The size limit is checked first: an oversized payload is refused unread.
    """
    if len(payload) > max_bytes:
        raise LibraryTooLarge(where, len(payload), max_bytes)
    if not payload:
        raise ReleaseMessageError(where, "empty payload (a cleared retained message)")
    try:
        raw = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReleaseMessageError(where, f"payload is not UTF-8 (byte offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ReleaseMessageError(
            where, f"payload is not JSON: {exc.msg} at byte {exc.pos} of {len(payload)} (truncated?)"
        ) from None
    except RecursionError:
        raise ReleaseMessageError(where, "payload JSON nested too deeply") from None
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        got = raw.get("schema_version") if isinstance(raw, dict) else type(raw).__name__
        raise ReleaseMessageError(where, f"schema_version {got!r} is not {SCHEMA_VERSION}")
    try:
        msg = LibraryReleasePayload.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ReleaseMessageError(where, f"not a release message at {loc}: {first['msg']}") from None
    signature = json.dumps(msg.signature.model_dump(mode="json")).encode("utf-8")
    return msg.library.encode("utf-8"), signature


def in_force_payload(
    *,
    site: str,
    gateway: str,
    version: str,
    serial: int,
    sha256: str,
    signer_key_id: str,
    applied_at: datetime,
    source: str,
) -> bytes:
    return (
        LibraryInForcePayload(
            site=site,
            gateway=gateway,
            version=version,
            serial=serial,
            sha256=sha256,
            signer_key_id=signer_key_id,
            applied_at=applied_at,
            source=source,
        )
        .model_dump_json()
        .encode("utf-8")
    )


PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "mqtt-library-current.schema.json": LibraryReleasePayload,
    "mqtt-library.schema.json": LibraryInForcePayload,
}
