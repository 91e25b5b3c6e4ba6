"""The daemon hands library decisions to the injected audit callable (the audit trail's
``append(kind, subject, detail, actor)``), and verdicts use the signed release in force."""

from __future__ import annotations

from gateway.config.load import load_config_text
from gateway.daemon import build_daemon
from gateway.druglib.releases import AUDIT_APPLIED, AUDIT_REFUSED
from tests.gateway.druglib.release_kit import library, make_key, sign
from tests.gateway.druglib.test_releases import AuditRecorder


async def test_build_daemon_audits_the_configured_signed_release_through_the_injected_callable(tmp_path):
    key = make_key(tmp_path / "keys", "pharmacy")
    stranger = make_key(tmp_path / "keys", "stranger")
    lib = tmp_path / "library.json"
    lib.write_bytes(library("2027.01"))
    (tmp_path / "library.json.sig").write_bytes(sign(lib.read_bytes(), key, 5))
    text = f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA0B"
[outbox]
path = "{tmp_path / "outbox.sqlite"}"
[library]
path = "{lib}"
trusted_keys = [{{ file = "{key.public_file}", valid_from = "2020-01-01T00:00:00Z" }}]
"""
    audit = AuditRecorder()
    daemon = build_daemon(load_config_text(text), audit=audit.append)
    try:
        assert daemon.pipeline is not None and daemon.releases is not None
        assert daemon.releases.holder.current.version == "2027.01"
        kind, subject, detail, actor = audit.rows[0]
        assert (kind, subject, actor, detail["source"], detail["serial"]) == (
            AUDIT_APPLIED,
            "2027.01",
            "pumpgw",
            "file",
            5,
        )
        # a file signed by another key: refused through the same callable, library unchanged
        (tmp_path / "library.json.sig").write_bytes(sign(library("2027.02"), stranger, 6))
        lib.write_bytes(library("2027.02"))
        from gateway.library_wiring import _offer_file

        _offer_file(daemon.releases, daemon.config.library)
        assert audit.kinds() == [AUDIT_APPLIED, AUDIT_REFUSED]
        assert daemon.releases.holder.current.version == "2027.01"
    finally:
        daemon.releases.state.close()
        await daemon.outbox.aclose()


async def test_a_pinned_library_put_in_force_or_refused_leaves_a_row_in_the_daemons_audit_trail(tmp_path):
    """Without an injected callable the daemon records library decisions in its own audit trail."""
    from gateway.audit.trail import AuditTrail
    from gateway.druglib.load import sha256_of
    from tests.gateway.druglib.conftest import EXAMPLE

    lib = tmp_path / "library.json"
    lib.write_bytes(EXAMPLE.read_bytes())
    text = f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA0B"
[outbox]
path = "{tmp_path / "outbox.sqlite"}"
[library]
path = "{lib}"
sha256 = "{sha256_of(lib.read_bytes())}"
"""
    daemon = build_daemon(load_config_text(text))
    try:
        lib.write_bytes(b'{"version": "broken"')  # a truncated copy: refused, the pinned library stays
        result = daemon.pipeline.library.reload()
        assert result.refused and daemon.pipeline.library.current.sha256 == sha256_of(EXAMPLE.read_bytes())
    finally:
        await daemon.supervisor._run_closers()
        await daemon.outbox.aclose()
    trail = AuditTrail.open_readonly(tmp_path / "outbox.sqlite")
    try:
        rows = trail.rows(kind="drug_library")
        assert [r.kind for r in rows] == [AUDIT_APPLIED, AUDIT_REFUSED]
        assert rows[0].detail_dict["sha256"] == sha256_of(EXAMPLE.read_bytes())
        assert rows[1].detail_dict["reason"] == "LibraryPinMismatch"
        assert trail.verify() == []
    finally:
        trail.close()
