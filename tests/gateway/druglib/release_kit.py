"""Helpers for signed-release tests: real keys on disk, real signatures, example library variants."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.resources import config_dir
from gateway.config.model import TrustedKeyConfig
from gateway.druglib.signing import generate_key, load_private_key, sign_library

EXAMPLE = config_dir() / "drug-library.example.json"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass
class Key:
    private: Ed25519PrivateKey
    public_file: Path
    private_file: Path
    key_id: str

    def trusted(self, valid_from: datetime = EPOCH, valid_until: datetime | None = None) -> TrustedKeyConfig:
        return TrustedKeyConfig(file=self.public_file, valid_from=valid_from, valid_until=valid_until)


def make_key(folder: Path, name: str) -> Key:
    folder.mkdir(parents=True, exist_ok=True)
    priv, pub, kid = generate_key()
    (folder / f"{name}.key").write_bytes(priv)
    (folder / f"{name}.pub").write_bytes(pub)
    return Key(load_private_key(folder / f"{name}.key"), folder / f"{name}.pub", folder / f"{name}.key", kid)


def library(version: str, *, released: str = "2026-11-30", indent: int | None = 2, edit=None) -> bytes:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["version"] = version
    data["released"] = released
    if edit is not None:
        edit(data)
    return json.dumps(data, indent=indent).encode("utf-8")


def sign(lib: bytes, key: Key, serial: int, *, signed_at: datetime | None = None) -> bytes:
    data = json.loads(lib)
    return sign_library(
        lib,
        key.private,
        version=data["version"],
        released=date.fromisoformat(data["released"]),
        serial=serial,
        signed_at=signed_at,
    )


def one_limit_digit_changed(lib: bytes) -> bytes:
    """The library with one byte changed: the last digit of the first hard maximum (+1 mod 10)."""
    import re

    m = re.search(rb'"hard_max": [0-9.]*([0-9])', lib)
    assert m is not None
    at = m.start(1)
    out = lib[:at] + bytes([0x30 + (lib[at] - 0x30 + 1) % 10]) + lib[at + 1 :]
    assert len(out) == len(lib) and sum(a != b for a, b in zip(out, lib)) == 1
    return out


def wait_audit_row(db: Path, predicate, timeout_s: float = 20):
    """The daemon's own audit trail (read-only, as an operator reads it while it runs)."""
    from gateway.audit.trail import AuditTrail

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        trail = AuditTrail.open_readonly(db)
        try:
            rows = trail.rows(kind="drug_library")
        finally:
            trail.close()
        for row in rows:
            if predicate(row):
                return row
        time.sleep(0.05)
    raise AssertionError(f"no matching audit row in {db}: {[(r.kind, r.detail) for r in rows]}")
