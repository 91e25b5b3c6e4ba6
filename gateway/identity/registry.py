"""The durable identity registry: one record per configured slot, one per device seen.

Kept in the gateway database (``pump_identity``, ``pump_device``; migration 3) beside the
audit trail, and written through the trail's connection so that a slot's new record and the
audit rows describing the change commit in **one** transaction.

Order against the outbox (design §2 inv. 9): the pipeline first commits the messages an
observation caused (HL7, MQTT), then :meth:`IdentityRegistry.apply`. A crash in between
re-derives the same change at the next start (a duplicate event, never a missed one).

``last_seen`` changes at every poll; it is kept in memory and written at most once per
``flush_interval_s`` (and at close), so polling 1,000 pumps does not mean 1,000 fsyncs a
second. After a crash ``last_seen`` may be up to that interval old.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from drivers.model import PumpIdentity
from gateway.audit import AuditError, AuditTrail
from gateway.events.model import EventKind
from gateway.identity.compare import Change, Comparison, compare
from gateway.identity.model import DeviceRecord, SlotRecord
from gateway.log import get_logger

log = get_logger("pumpgw.identity")

_SLOT_COLUMNS = (
    "pump_id, manufacturer, model, serial_number, firmware, drug_library_version, udi, asset_tag, "
    "asset_serial, first_seen, last_seen, unreadable_since"
)


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _slot(row: tuple) -> SlotRecord:
    values = list(row)
    for i in (9, 10, 11):
        values[i] = _dt(values[i])
    return SlotRecord(*values)


def load_slots(conn: sqlite3.Connection) -> dict[str, SlotRecord]:
    return {r[0]: _slot(r) for r in conn.execute(f"SELECT {_SLOT_COLUMNS} FROM pump_identity ORDER BY pump_id")}


@dataclass
class Observation:
    """What one reported identity means for a slot: changes found, the record to store."""

    pump_id: str
    at: datetime
    comparison: Comparison
    reported: PumpIdentity | None
    previous: SlotRecord | None
    reason: str = ""
    changes: list[Change] = field(default_factory=list)


class IdentityRegistry:
    def __init__(
        self, trail: AuditTrail, asset_tags: Mapping[str, str | None], *, flush_interval_s: float = 60.0
    ) -> None:
        self.trail = trail
        self._conn = trail.connection
        self.flush_interval_s = flush_interval_s
        self.slots = load_slots(self._conn)
        self._asset_tags = dict(asset_tags)
        self._dirty: set[str] = set()
        self._unreadable_unknown: set[str] = set()  # never identified and unreadable: reported once
        self._last_flush = time.monotonic()

    # -- start-up -----------------------------------------------------------------------

    def sync_asset_tags(self) -> list[tuple[str, str | None, str | None]]:
        """Take the configured asset tags; each change (registered, changed, removed) is audited.

        A new tag is bound to the device seen next in that slot (normally the one there now).
        """
        changed = []
        for pump_id, tag in self._asset_tags.items():
            record = self.slots.get(pump_id)
            if record is None or record.asset_tag == tag:
                continue
            changed.append((pump_id, record.asset_tag, tag))
            new = replace(record, asset_tag=tag, asset_serial=None)
            self._transaction(
                new,
                [
                    (
                        "identity.asset_tag",
                        {
                            "previous": record.asset_tag or "",
                            "asset_tag": tag or "",
                            "serial": record.serial_number or "",
                            "model": record.model or "",
                        },
                    )
                ],
            )
        return changed

    # -- observations ---------------------------------------------------------------------

    def observe(self, pump_id: str, identity: PumpIdentity, at: datetime, *, complete: bool) -> Observation:
        """Compare a reported identity (``complete``: from an identify call) with the slot."""
        known = self.slots.get(pump_id)
        seen = None
        if identity.serial_number and (known is None or known.serial_number != identity.serial_number):
            seen = self._device(identity.manufacturer, identity.serial_number)
        result = compare(
            pump_id, known, identity, at, asset_tag=self._asset_tags.get(pump_id), complete=complete, seen_before=seen
        )
        return Observation(pump_id, at, result, identity, known, changes=list(result.changes))

    def unreadable(self, pump_id: str, at: datetime, reason: str) -> Observation:
        """The identify call itself failed (the pump answered, but not with its identity)."""
        known = self.slots.get(pump_id)
        changes: list[Change] = []
        record = known
        if known is not None and known.unreadable_since is None:
            changes.append(
                Change(
                    EventKind.IDENTITY_UNREADABLE,
                    {
                        "missing": "identity",
                        "serial": known.serial_number or "",
                        "firmware": known.firmware or "",
                        "reason": reason,
                    },
                    "warning",
                )
            )
            record = replace(known, unreadable_since=at)
        elif known is None and pump_id not in self._unreadable_unknown:
            self._unreadable_unknown.add(pump_id)
            changes.append(
                Change(
                    EventKind.IDENTITY_UNREADABLE,
                    {"missing": "identity", "serial": "", "firmware": "", "reason": reason},
                    "warning",
                )
            )
        return Observation(pump_id, at, Comparison(changes, record), None, known, reason, changes)

    def needs_commit(self, obs: Observation) -> bool:
        return bool(obs.changes) or obs.comparison.new_device or obs.comparison.record != obs.previous

    def apply(self, obs: Observation) -> None:
        """Store the slot's new record and audit every change, in one transaction."""
        record = obs.comparison.record
        if record is None:  # unreadable before any identity was ever known: audit only
            self._audit_only([(f"identity.{c.kind.value}", c.detail) for c in obs.changes], obs.pump_id)
            return
        if not (obs.changes or obs.comparison.new_device or self._material(obs.previous, record)):
            self.slots[obs.pump_id] = record  # last_seen only: written by the next flush
            self._dirty.add(obs.pump_id)
            return
        audits = [(f"identity.{c.kind.value}", c.detail) for c in obs.changes]
        if obs.comparison.new_device and obs.previous is None:
            audits.append(
                (
                    "identity.registered",
                    {
                        k: v or ""
                        for k, v in record.to_dict().items()
                        if k not in ("pump", "last_seen", "unreadable_since")
                    },
                )
            )
        elif (
            not obs.changes
            and obs.previous is not None
            and obs.previous.unreadable_since
            and not record.unreadable_since
        ):
            audits.append(
                ("identity.readable_again", {"serial": record.serial_number or "", "firmware": record.firmware or ""})
            )
        device = (record.manufacturer or "", record.serial_number) if record.serial_number else None
        self._transaction(record, audits, device=device)

    @staticmethod
    def _material(before: SlotRecord | None, after: SlotRecord) -> bool:
        if before is None:
            return True
        return replace(before, last_seen=after.last_seen) != after

    # -- persistence ----------------------------------------------------------------------

    def _transaction(
        self, record: SlotRecord, audits: list[tuple[str, dict]], device: tuple[str, str] | None = None
    ) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"INSERT OR REPLACE INTO pump_identity ({_SLOT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        record.pump_id,
                        record.manufacturer,
                        record.model,
                        record.serial_number,
                        record.firmware,
                        record.drug_library_version,
                        record.udi,
                        record.asset_tag,
                        record.asset_serial,
                        _iso(record.first_seen),
                        _iso(record.last_seen),
                        _iso(record.unreadable_since),
                    ),
                )
                if device is not None:
                    self._upsert_device(device, record)
                for kind, detail in audits:
                    self.trail.append_in(kind, record.pump_id, detail)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, AuditError) as exc:
            # The in-memory record moves on anyway (no event storm every poll); the change is
            # re-found at the next start, and this is loud.
            log.error("identity record not stored", pump=record.pump_id, error=str(exc), error_type=type(exc).__name__)
        self.slots[record.pump_id] = record
        self._dirty.discard(record.pump_id)

    def _audit_only(self, audits: list[tuple[str, dict]], pump_id: str) -> None:
        for kind, detail in audits:
            try:
                self.trail.append(kind, pump_id, detail)
            except AuditError as exc:
                log.error("audit row not stored", pump=pump_id, error=str(exc), error_type=type(exc).__name__)

    def _upsert_device(self, device: tuple[str, str], record: SlotRecord) -> None:
        self._conn.execute(
            "INSERT INTO pump_device (manufacturer, serial_number, model, first_seen, last_seen, last_pump_id) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (manufacturer, serial_number) DO UPDATE SET "
            "model=excluded.model, last_seen=excluded.last_seen, last_pump_id=excluded.last_pump_id",
            (*device, record.model, _iso(record.last_seen), _iso(record.last_seen), record.pump_id),
        )

    def _device(self, manufacturer: str, serial: str) -> DeviceRecord | None:
        row = self._conn.execute(
            "SELECT manufacturer, serial_number, model, first_seen, last_seen, last_pump_id FROM pump_device "
            "WHERE manufacturer=? AND serial_number=?",
            (manufacturer, serial),
        ).fetchone()
        if row is None:
            return None
        return DeviceRecord(
            row[0], row[1], row[2], datetime.fromisoformat(row[3]), datetime.fromisoformat(row[4]), row[5]
        )

    def flush(self, *, force: bool = False) -> int:
        """Write pending ``last_seen`` values (at most every ``flush_interval_s`` unless forced)."""
        if not self._dirty or (not force and time.monotonic() - self._last_flush < self.flush_interval_s):
            return 0
        self._last_flush = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for pump_id in dirty:
                    record = self.slots[pump_id]
                    self._conn.execute(
                        "UPDATE pump_identity SET last_seen=? WHERE pump_id=?", (_iso(record.last_seen), pump_id)
                    )
                    if record.serial_number:
                        self._conn.execute(
                            "UPDATE pump_device SET last_seen=? WHERE manufacturer=? AND serial_number=?",
                            (_iso(record.last_seen), record.manufacturer or "", record.serial_number),
                        )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            log.warning(
                "last-seen times not stored (retried at the next flush)", error=str(exc), error_type=type(exc).__name__
            )
            self._dirty |= dirty
            return 0
        return len(dirty)

    def records(self, pump_ids: Iterable[str] | None = None) -> list[SlotRecord]:
        ids = sorted(self.slots) if pump_ids is None else list(pump_ids)
        return [self.slots[p] for p in ids if p in self.slots]


def utcnow() -> datetime:
    return datetime.now(UTC)
