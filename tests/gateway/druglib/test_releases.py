"""Putting signed releases in force: every refusal leaves the running library unchanged, is
logged, audited and alerted once; the version in force survives a restart."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.druglib import LibraryHolder
from gateway.druglib.errors import LibraryNotNewer, LibraryTooLarge
from gateway.druglib.releases import AUDIT_APPLIED, AUDIT_REFUSED, Outcome, ReleaseApplier
from gateway.druglib.state import ReleaseState
from gateway.druglib.trust import TrustList
from gateway.mqtt.library_payloads import ReleaseMessageError, decode_release, encode_release
from tests.gateway.druglib.release_kit import library, make_key, one_limit_digit_changed, sign

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@dataclass
class AuditRecorder:
    """Stands where the audit trail (issue 17) will: same ``append(kind, subject, detail, actor)``."""

    rows: list[tuple[str, str, dict, str]] = field(default_factory=list)

    def append(self, kind: str, subject: str, detail: dict, actor: str = "pumpgw") -> None:
        self.rows.append((kind, subject, detail, actor))

    def kinds(self) -> list[str]:
        return [r[0] for r in self.rows]


@dataclass
class Gateway:
    """One gateway's release machinery on a real SQLite file."""

    db: Path
    trust: TrustList
    audit: AuditRecorder = field(default_factory=AuditRecorder)
    alerts: list[tuple[str, dict]] = field(default_factory=list)
    reported: list = field(default_factory=list)
    allow_downgrade: bool = False

    def __post_init__(self) -> None:
        self.holder = LibraryHolder(Path("(signed)"))
        self.state = ReleaseState(self.db)
        self.applier = ReleaseApplier(
            trust=self.trust,
            state=self.state,
            holder=self.holder,
            audit=self.audit.append,
            on_alert=lambda name, d: self.alerts.append((name, d)),
            on_change=self.reported.append,
            allow_downgrade=self.allow_downgrade,
            clock=lambda: NOW,
            max_bytes=2 * 1024 * 1024,
        )

    def offer(self, lib: bytes, sig: bytes, source: str = "mqtt"):
        return self.applier.offer(lib, sig, source=source, where=f"test {source}")

    @property
    def version(self) -> str | None:
        return self.holder.current.version if self.holder.current else None


@pytest.fixture
def keys(tmp_path):
    return make_key(tmp_path / "k", "pharmacy"), make_key(tmp_path / "k", "stranger")


@pytest.fixture
def gateway(tmp_path, keys):
    gw = Gateway(tmp_path / "outbox.sqlite", TrustList.from_config([keys[0].trusted()]))
    yield gw
    gw.state.close()


V1, V2 = library("2026.11"), library("2026.12")


def _applied_v2(gateway, key):
    assert gateway.offer(V1, sign(V1, key, 1, signed_at=NOW)).outcome is Outcome.APPLIED
    assert gateway.offer(V2, sign(V2, key, 2, signed_at=NOW)).outcome is Outcome.APPLIED
    assert gateway.version == "2026.12"
    gateway.audit.rows.clear()
    gateway.alerts.clear()


def test_a_newer_signed_release_is_put_in_force_audited_and_reported(gateway, keys):
    result = gateway.offer(V1, sign(V1, keys[0], 1, signed_at=NOW))
    assert result.outcome is Outcome.APPLIED and gateway.version == "2026.11"
    kind, subject, detail, actor = gateway.audit.rows[0]
    assert (kind, subject, actor, detail["serial"], detail["signer_key_id"]) == (
        AUDIT_APPLIED,
        "2026.11",
        "pumpgw",
        1,
        keys[0].key_id,
    )
    assert gateway.reported[-1].version == "2026.11" and gateway.reported[-1].source == "mqtt"
    assert gateway.holder.current.sha256 == result.in_force.sha256  # verdicts name the release's hash


def _assert_refused(gateway, result, reason: str, logs, *, in_force: str = "2026.12") -> None:
    assert result.outcome is Outcome.REFUSED
    assert gateway.version == in_force  # the running library is unchanged
    assert gateway.audit.kinds() == [AUDIT_REFUSED] and gateway.audit.rows[0][2]["reason"] == reason
    assert [a[0] for a in gateway.alerts] == ["drug_library_refused"]
    refused = [e for e in logs if e["event"] == "drug library release refused"]
    assert len(refused) == 1 and refused[0]["log_level"] == "error" and refused[0]["reason"] == reason


def test_a_library_with_one_byte_changed_is_refused(gateway, keys):
    _applied_v2(gateway, keys[0])
    v3 = library("2027.01")
    sig = sign(v3, keys[0], 3, signed_at=NOW)
    with capture_logs() as logs:
        result = gateway.offer(one_limit_digit_changed(v3), sig)
    _assert_refused(gateway, result, "SignatureError", logs)
    assert "altered after signing" in gateway.audit.rows[0][2]["message"]


def test_a_release_signed_by_an_untrusted_key_is_refused(gateway, keys):
    _applied_v2(gateway, keys[0])
    v3 = library("2027.01")
    with capture_logs() as logs:
        result = gateway.offer(v3, sign(v3, keys[1], 3, signed_at=NOW))
    _assert_refused(gateway, result, "SignatureError", logs)
    assert gateway.audit.rows[0][2]["signer_key_id"] == keys[1].key_id


def test_a_key_removed_from_the_trust_list_stops_verifying_at_the_reload(tmp_path, gateway, keys):
    _applied_v2(gateway, keys[0])
    backup = make_key(tmp_path / "k", "backup")
    with capture_logs() as logs:
        gateway.applier.update_trust(
            TrustList.from_config([backup.trusted()]), allow_downgrade=False, expected_sha256=""
        )
    # the release in force stays (never drop the library) but is flagged: audited and alerted
    assert gateway.version == "2026.12" and gateway.audit.kinds() == [AUDIT_REFUSED]
    assert gateway.audit.rows[0][2]["still_in_force"] is True
    assert any(e["event"] == "drug library in force is no longer trusted" for e in logs)
    gateway.audit.rows.clear()
    gateway.alerts.clear()
    v3 = library("2027.01")
    with capture_logs() as logs:
        result = gateway.offer(v3, sign(v3, keys[0], 3, signed_at=NOW))
    _assert_refused(gateway, result, "SignatureError", logs)
    assert "not a trusted key" in gateway.audit.rows[0][2]["message"]


def test_an_older_release_is_refused(gateway, keys):
    _applied_v2(gateway, keys[0])
    v0 = library("2026.10")
    with capture_logs() as logs:
        result = gateway.offer(v0, sign(v0, keys[0], 0, signed_at=NOW))
    _assert_refused(gateway, result, "LibraryNotNewer", logs)
    assert isinstance(result.error, LibraryNotNewer) and gateway.audit.rows[0][2]["in_force_serial"] == 2


def test_a_redelivered_old_release_is_refused_once_not_in_a_storm(gateway, keys):
    sig1 = sign(V1, keys[0], 1, signed_at=NOW)
    gateway.offer(V1, sig1)
    gateway.offer(V2, sign(V2, keys[0], 2, signed_at=NOW))
    gateway.audit.rows.clear()
    with capture_logs() as logs:
        results = [gateway.offer(V1, sig1) for _ in range(5)]  # a broker redelivering on every reconnect
    assert all(r.outcome is Outcome.REFUSED for r in results) and gateway.version == "2026.12"
    assert gateway.audit.kinds() == [AUDIT_REFUSED] and len(gateway.alerts) == 1
    assert sum(e["event"] == "drug library release refused" for e in logs) == 1
    assert sum(e["event"] == "drug library release refused again (already reported)" for e in logs) == 4


def test_the_release_in_force_delivered_again_is_silent(gateway, keys):
    _applied_v2(gateway, keys[0])
    assert gateway.offer(V2, sign(V2, keys[0], 2, signed_at=NOW)).outcome is Outcome.UNCHANGED
    assert gateway.audit.rows == [] and gateway.alerts == []


def test_a_recall_with_allow_downgrade_applies_the_older_release_and_audits_it(tmp_path, keys):
    gw = Gateway(tmp_path / "o.sqlite", TrustList.from_config([keys[0].trusted()]), allow_downgrade=True)
    _applied_v2(gw, keys[0])
    result = gw.offer(V1, sign(V1, keys[0], 1, signed_at=NOW))
    assert result.outcome is Outcome.APPLIED and gw.version == "2026.11"
    assert gw.audit.kinds() == [AUDIT_APPLIED] and gw.audit.rows[0][2]["downgrade"] is True
    gw.state.close()


def test_the_version_in_force_survives_a_restart_and_still_refuses_older_releases(tmp_path, gateway, keys):
    _applied_v2(gateway, keys[0])
    gateway.state.close()
    restarted = Gateway(gateway.db, TrustList.from_config([keys[0].trusted()]))
    assert restarted.applier.restore().outcome is Outcome.APPLIED
    assert restarted.version == "2026.12" and restarted.reported[-1].source == "mqtt"
    assert restarted.audit.rows == []  # a restart is not a new application
    result = restarted.offer(V1, sign(V1, keys[0], 1, signed_at=NOW))
    assert result.outcome is Outcome.REFUSED and restarted.version == "2026.12"
    restarted.state.close()


def test_a_stored_release_whose_key_was_revoked_is_not_restored(tmp_path, gateway, keys):
    _applied_v2(gateway, keys[0])
    gateway.state.close()
    restarted = Gateway(gateway.db, TrustList.from_config([keys[1].trusted()]))
    assert restarted.applier.restore().outcome is Outcome.REFUSED
    assert restarted.version is None and restarted.audit.kinds() == [AUDIT_REFUSED]
    restarted.state.close()


def test_an_unsigned_draft_is_refused_even_when_signed(gateway, keys):
    _applied_v2(gateway, keys[0])
    draft = library("2027.01", edit=lambda d: d.update(status="draft"))
    with capture_logs() as logs:
        result = gateway.offer(draft, sign(draft, keys[0], 3, signed_at=NOW))
    _assert_refused(gateway, result, "LibraryInvalid", logs)


def test_a_truncated_publish_is_refused_with_its_position(gateway, keys):
    _applied_v2(gateway, keys[0])
    v3 = library("2027.01")
    payload = encode_release(v3, sign(v3, keys[0], 3, signed_at=NOW), published_at=NOW)
    with pytest.raises(ReleaseMessageError, match=r"not JSON: .* of \d+ \(truncated\?\)") as info:
        decode_release(payload[: len(payload) // 2], where="mqtt pumpgw/v1/library/current", max_bytes=1 << 21)
    with capture_logs() as logs:
        result = gateway.applier.refuse(info.value, source="mqtt", where="mqtt", digest="d1")
    _assert_refused(gateway, result, "ReleaseMessageError", logs)


def test_a_10_mb_publish_is_refused_by_its_size_before_parsing():
    # not even JSON: a parser would say "syntax error"; the size check answers first
    payload = b"\xff" * (10 * 1024 * 1024)
    with pytest.raises(LibraryTooLarge) as info:
        decode_release(payload, where="mqtt pumpgw/v1/library/current", max_bytes=2 * 1024 * 1024)
    assert info.value.size == 10 * 1024 * 1024 and "library.max_release_bytes" in str(info.value)


def test_the_release_message_round_trips_library_and_signature(keys):
    v3 = library("2027.01")
    sig = sign(v3, keys[0], 3, signed_at=NOW)
    lib, sig2 = decode_release(encode_release(v3, sig, published_at=NOW), where="t", max_bytes=1 << 21)
    assert lib == v3 and json.loads(sig2) == json.loads(sig)


async def test_offers_from_the_event_loop_verify_off_the_loop_and_apply_in_order(gateway, keys):
    r1 = await gateway.applier.offer_async(V1, sign(V1, keys[0], 1, signed_at=NOW), source="watch_dir", where="x")
    r2 = await gateway.applier.offer_async(V2, sign(V2, keys[0], 2, signed_at=NOW), source="watch_dir", where="y")
    assert (r1.outcome, r2.outcome) == (Outcome.APPLIED, Outcome.APPLIED) and gateway.version == "2026.12"


def test_a_signature_older_than_a_keys_window_is_refused(tmp_path, keys):
    gw = Gateway(tmp_path / "o.sqlite", TrustList.from_config([keys[0].trusted(valid_from=NOW)]))
    result = gw.offer(V1, sign(V1, keys[0], 1, signed_at=NOW - timedelta(days=1)))
    assert result.outcome is Outcome.REFUSED and "was not valid at signed_at" in str(result.error)
    gw.state.close()


def test_a_release_that_cannot_be_stored_is_not_applied(gateway, keys):
    gateway.offer(V1, sign(V1, keys[0], 1, signed_at=NOW))
    gateway.state._conn.execute("PRAGMA query_only = ON")  # the database refuses writes from here on
    result = gateway.offer(V2, sign(V2, keys[0], 2, signed_at=NOW))
    assert result.outcome is Outcome.REFUSED and "cannot store the release" in str(result.error)
    assert gateway.version == "2026.11" and gateway.audit.kinds()[-1] == AUDIT_REFUSED
