"""The identity registry on a real SQLite file: durable across restarts, audited in one commit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from drivers.model import PumpIdentity
from gateway.audit import AuditTrail
from gateway.events.model import EventKind
from gateway.identity import IdentityRegistry

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
PUMP = PumpIdentity("BD", "Asena GH", "8002-51740", "Rev 2.1.5")


def _registry(path, tags=None):
    return IdentityRegistry(AuditTrail.open(path), tags or {"bed03": "MT-0042"})


def test_a_swap_made_while_the_gateway_was_stopped_is_found_after_a_restart(tmp_path):
    db = tmp_path / "gw.db"
    first = _registry(db)
    first.apply(first.observe("bed03", PUMP, T0, complete=True))
    first.trail.close()
    second = _registry(db)  # a new process: only the file remembers
    obs = second.observe("bed03", replace(PUMP, serial_number="8002-77777"), T0 + timedelta(days=1), complete=True)
    assert [c.kind for c in obs.changes] == [EventKind.DEVICE_SWAPPED]
    second.apply(obs)
    kinds = [r.kind for r in second.trail.rows(subject="bed03")]
    assert kinds == ["identity.registered", "identity.device_swapped"]
    assert second.trail.verify() == []
    third = _registry(db)
    assert third.slots["bed03"].serial_number == "8002-77777"
    assert third.slots["bed03"].asset_serial == "8002-51740"  # the register still names the old one


def test_the_original_device_back_in_another_slot_is_a_return(tmp_path):
    reg = _registry(tmp_path / "gw.db", {"bed03": None, "bed04": None})
    reg.apply(reg.observe("bed03", PUMP, T0, complete=True))
    reg.apply(reg.observe("bed03", replace(PUMP, serial_number="B"), T0 + timedelta(hours=1), complete=True))
    reg.apply(reg.observe("bed04", replace(PUMP, serial_number="C"), T0, complete=True))
    obs = reg.observe("bed04", PUMP, T0 + timedelta(days=2), complete=True)
    assert [c.kind for c in obs.changes] == [EventKind.DEVICE_SWAPPED, EventKind.DEVICE_RETURNED]
    assert obs.changes[1].detail["last_slot"] == "bed03"


def test_last_seen_is_written_by_the_periodic_flush_not_every_poll(tmp_path):
    db = tmp_path / "gw.db"
    reg = _registry(db)
    reg.apply(reg.observe("bed03", PUMP, T0, complete=True))
    later = T0 + timedelta(minutes=5)
    reg.apply(reg.observe("bed03", PUMP, later, complete=False))
    assert _registry(db).slots["bed03"].last_seen == T0
    assert reg.flush(force=True) == 1
    assert _registry(db).slots["bed03"].last_seen == later
    assert [r.kind for r in reg.trail.rows()] == ["identity.registered"]  # no audit row per poll


def test_a_changed_asset_tag_is_audited_and_rebound_to_the_next_device_seen(tmp_path):
    db = tmp_path / "gw.db"
    reg = _registry(db)
    reg.apply(reg.observe("bed03", PUMP, T0, complete=True))
    reg2 = _registry(db, {"bed03": "MT-0099"})
    assert reg2.sync_asset_tags() == [("bed03", "MT-0042", "MT-0099")]
    rows = reg2.trail.rows(kind="identity.asset_tag")
    assert rows[-1].detail_dict == {
        "previous": "MT-0042",
        "asset_tag": "MT-0099",
        "serial": PUMP.serial_number,
        "model": PUMP.model,
    }
    obs = reg2.observe("bed03", replace(PUMP, serial_number="NEW"), T0 + timedelta(days=1), complete=True)
    assert obs.changes[0].detail["contradicts_asset_tag"] == "false"
