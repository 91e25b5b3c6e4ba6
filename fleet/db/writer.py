"""Write one batch of records in ONE PostgreSQL transaction, idempotently.

The collector acknowledges a batch's messages to the broker only after :meth:`Writer.write`
returned (the transaction committed). Every statement is idempotent, so a batch written but
not acknowledged (collector killed between commit and PUBACK) and redelivered leaves the
database unchanged:

* events, alarms, gateway alerts: ``ON CONFLICT DO NOTHING`` on (gateway, message id[, time]);
* latest-state rows (status, inventory, pump state, availability, library): updated only when
  the message is newer than what is stored, so a late retained message never rolls back state;
* identity and library history: one row per change, keyed by the observation time.

Statements run in psycopg's pipeline mode in arrival order (order per pump is kept: ``events.id``
grows in the order messages arrived) without one round trip per message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date
from typing import Any

import psycopg

from fleet.db.migrations import ensure_month
from fleet.db import sql
from fleet.ingest.records import (
    AlarmMsg,
    Availability,
    Event,
    GatewayAlert,
    GatewayLibrary,
    Identity,
    Inventory,
    Record,
    Rejected,
    Release,
    State,
    Status,
)


def _ident(i: Identity) -> dict[str, Any]:
    return {"mf": i.manufacturer, "model": i.model, "sn": i.serial_number, "fw": i.firmware,
            "lib": i.library_version}


class Writer:
    """Owns nothing but caches: gateway ids and the month partitions known to exist."""

    def __init__(self) -> None:
        self._gateway_ids: dict[tuple[str, str], int] = {}
        self._months: set[tuple[str, date]] = set()

    def forget(self) -> None:
        """After a failed transaction (or a reconnect), trust nothing cached."""
        self._gateway_ids.clear()
        self._months.clear()

    def write(self, conn: psycopg.Connection, records: Sequence[Record]) -> None:
        """Write ``records`` in one transaction; raises (and rolls back) on any database error."""
        new_months: set[tuple[str, date]] = set()
        new_gateways: dict[tuple[str, str], int] = {}
        try:
            with conn.transaction():
                ids = self._gateways(conn, records, new_gateways)
                for table, month in self._months_needed(records):
                    if (table, month) not in self._months:
                        ensure_month(conn, table, month)
                        new_months.add((table, month))
                with conn.pipeline(), conn.cursor() as cur:
                    for rec in records:
                        self._one(cur, rec, ids)
                    seen = {ids[k] for k in ids if k in {(getattr(r, "site", ""), getattr(r, "gateway", ""))
                                                         for r in records}}
                    for g in sorted(seen):
                        cur.execute(sql.GATEWAY_SEEN, {"g": g})
        except BaseException:
            self.forget()
            raise
        self._months |= new_months
        self._gateway_ids.update(new_gateways)

    # -- helpers ---------------------------------------------------------------------------
    def _gateways(self, conn: psycopg.Connection, records: Sequence[Record],
                  new: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        ids = dict(self._gateway_ids)
        for rec in records:
            key = (getattr(rec, "site", ""), getattr(rec, "gateway", ""))
            if not key[1] or key in ids:
                continue
            row = conn.execute(sql.GATEWAY_ID, {"site": key[0], "gw": key[1]}).fetchone()
            assert row is not None
            ids[key] = new[key] = int(row[0])
        return ids

    @staticmethod
    def _months_needed(records: Sequence[Record]) -> set[tuple[str, date]]:
        out = set()
        for rec in records:
            if isinstance(rec, Event | AlarmMsg):
                table = "events" if isinstance(rec, Event) else "alarms"
                out.add((table, rec.occurred_at.astimezone(UTC).date().replace(day=1)))
        return out

    def _one(self, cur: psycopg.Cursor, rec: Record, ids: dict[tuple[str, str], int]) -> None:
        if isinstance(rec, Rejected):
            cur.execute(sql.REJECTED, {"topic": rec.topic, "reason": rec.reason})
            return
        if isinstance(rec, Release):
            cur.execute(sql.RELEASE, {"v": rec.version, "sha": rec.sha256, "at": rec.released_at})
            return
        g = ids[(rec.site, rec.gateway)]
        if isinstance(rec, Event):
            cur.execute(sql.EVENT, {
                "g": g, "pump": rec.pump, "mid": rec.message_id, "kind": rec.kind, "at": rec.occurred_at,
                "ch": rec.channel, "cs": rec.channel_state, "drug": rec.drug, "area": rec.care_area,
                "detail": json.dumps(rec.detail),
                "prev": json.dumps(_ident(rec.previous_identity)) if rec.previous_identity else None,
            })
            cur.execute(sql.PUMP_SEEN, {"g": g, "pump": rec.pump, "at": rec.occurred_at})
        elif isinstance(rec, AlarmMsg):
            cur.execute(sql.ALARM, {
                "g": g, "pump": rec.pump, "mid": rec.message_id, "phase": rec.phase, "aid": rec.alert_instance_id,
                "at": rec.occurred_at, "ch": rec.channel, "code": rec.code, "kind": rec.alarm_kind,
                "prio": rec.priority, "text": rec.text,
            })
            cur.execute(sql.PUMP_SEEN, {"g": g, "pump": rec.pump, "at": rec.occurred_at})
        elif isinstance(rec, State):
            self._identity(cur, g, rec.pump, rec.identity, rec.received_at, "state")
            cur.execute(sql.PUMP_STATE, {
                "g": g, "pump": rec.pump, "at": rec.received_at,
                "channels": json.dumps([{"channel": c, "state": s, "drug": d} for c, s, d in rec.channels]),
            })
            for v in rec.verdicts:
                key = json.dumps([v.drug, v.care_area, v.severity, v.kinds, v.library_version])
                cur.execute(sql.VERDICT, {"g": g, "pump": rec.pump, "ch": v.channel, "at": rec.received_at,
                                          "drug": v.drug, "area": v.care_area, "sev": v.severity,
                                          "kinds": list(v.kinds), "lib": v.library_version, "key": key})
                cur.execute(sql.VERDICT_KEY, {"g": g, "pump": rec.pump, "ch": v.channel, "key": key,
                                              "at": rec.received_at})
        elif isinstance(rec, Availability):
            cur.execute(sql.AVAILABILITY, {"g": g, "pump": rec.pump, "av": rec.availability, "at": rec.since})
        elif isinstance(rec, Inventory):
            cur.execute(sql.GATEWAY_INVENTORY, {"g": g, "at": rec.generated_at, "lib": rec.central_library_version,
                                                "ward": rec.ward})
            for p in rec.pumps:
                at = p.last_seen or rec.generated_at
                if any(_ident(p.identity).values()):
                    self._identity(cur, g, p.pump, p.identity, at, "inventory")
                cur.execute(sql.PUMP_INVENTORY, {"g": g, "pump": p.pump, "asset": p.asset_tag, "udi": p.udi,
                                                 "bed": p.bed, "first": p.first_seen, "last": p.last_seen})
        elif isinstance(rec, Status):
            cur.execute(sql.STATUS, {
                "g": g, "state": rec.state, "session": rec.session, "version": rec.version,
                "hash": rec.config_hash, "since": rec.since, "ward": rec.ward, "hb": rec.heartbeat_at,
                "hbi": rec.heartbeat_interval_s, "depth": rec.outbox_depth, "age": rec.outbox_oldest_age_s,
            })
        elif isinstance(rec, GatewayAlert):
            cur.execute(sql.ALERT, {"g": g, "mid": rec.message_id, "alert": rec.alert, "at": rec.occurred_at,
                                    "details": json.dumps(rec.details)})
        elif isinstance(rec, GatewayLibrary):
            p = {"g": g, "v": rec.version, "sha": rec.sha256, "signer": rec.signer_key_id, "at": rec.applied_at,
                 "src": rec.source}
            cur.execute(sql.GATEWAY_LIBRARY_HISTORY, p)
            cur.execute(sql.GATEWAY_LIBRARY, p)

    @staticmethod
    def _identity(cur: psycopg.Cursor, g: int, pump: str, ident: Identity, at: Any, source: str) -> None:
        params = {"g": g, "pump": pump, "at": at, "src": source, **_ident(ident)}
        cur.execute(sql.IDENTITY_HISTORY, params)
        cur.execute(sql.PUMP_IDENTITY, params)
