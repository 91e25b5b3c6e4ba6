"""One batch's records, collected per kind and written set-based (the writer's statements).

:class:`Batch` turns records into statements for :class:`fleet.db.writer.Writer`, which owns the
transaction: rare kinds (rejections, releases, status, alerts, libraries, identity history) are
executed as they come, in the pipeline; frequent ones (events, alarms, latest pump state,
availability, inventory, verdicts) are collected and flushed with one statement per kind. Only
changes are kept: an identity or verdict the writer already knows costs no statement.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

from fleet.db import bulk, sql
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

Key = tuple[int, str]


def _ident(i: Identity) -> dict[str, Any]:
    return {"mf": i.manufacturer, "model": i.model, "sn": i.serial_number, "fw": i.firmware, "lib": i.library_version}


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b > a) else a


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


class Batch:
    """Collects one batch: rare kinds are executed at once, frequent ones flushed set-based."""

    def __init__(
        self, identities: dict[Key, tuple[str | None, ...]], verdicts: dict[tuple[int, str, str], str]
    ) -> None:
        self._known_identities = identities
        self._known_verdicts = verdicts
        self.identities: dict[Key, tuple[str | None, ...]] = {}
        self.verdicts: dict[tuple[int, str, str], str] = {}
        self.events: list[tuple[Any, ...]] = []
        self.alarms: list[tuple[Any, ...]] = []
        self.seen: dict[Key, list[datetime]] = {}
        self.observed: dict[Key, dict[str, Any]] = {}
        self.availability: dict[Key, tuple[str, datetime]] = {}
        self.inventory: dict[Key, list[Any]] = {}
        self.gateways: set[int] = set()
        self.verdict_rows: list[tuple[Any, ...]] = []
        self.verdict_unknown: list[tuple[Any, ...]] = []  # one per channel at most (then it is known)

    def add(self, cur: psycopg.Cursor, rec: Record, ids: dict[tuple[str, str], int]) -> None:
        if isinstance(rec, Rejected):
            cur.execute(sql.REJECTED, {"topic": rec.topic, "reason": rec.reason})
            return
        if isinstance(rec, Release):
            cur.execute(sql.RELEASE, {"v": rec.version, "sha": rec.sha256, "at": rec.released_at})
            return
        g = ids[(rec.site, rec.gateway)]
        self.gateways.add(g)
        if isinstance(rec, Event):
            self.events.append(
                (
                    g,
                    rec.pump,
                    rec.message_id,
                    rec.kind,
                    rec.occurred_at,
                    rec.channel,
                    rec.channel_state,
                    rec.drug,
                    rec.care_area,
                    json.dumps(rec.detail) if rec.detail else "{}",
                    json.dumps(_ident(rec.previous_identity)) if rec.previous_identity else None,
                )
            )
            self._seen(g, rec.pump, rec.occurred_at)
        elif isinstance(rec, AlarmMsg):
            self.alarms.append(
                (
                    g,
                    rec.pump,
                    rec.message_id,
                    rec.phase,
                    rec.alert_instance_id,
                    rec.occurred_at,
                    rec.channel,
                    rec.code,
                    rec.alarm_kind,
                    rec.priority,
                    rec.text,
                )
            )
            self._seen(g, rec.pump, rec.occurred_at)
        elif isinstance(rec, State):
            self._identity(cur, g, rec.pump, rec.identity, rec.received_at, "state")
            obs = self.observed[(g, rec.pump)]
            if obs.get("sat") is None or rec.received_at > obs["sat"]:
                obs["sat"] = rec.received_at
                obs["ch"] = json.dumps([{"channel": c, "state": s, "drug": d} for c, s, d in rec.channels])
            for v in rec.verdicts:
                self._verdict(cur, g, rec.pump, v, rec.received_at)
        elif isinstance(rec, Availability):
            prev = self.availability.get((g, rec.pump))
            if prev is None or rec.since >= prev[1]:
                self.availability[(g, rec.pump)] = (rec.availability, rec.since)
        elif isinstance(rec, Inventory):
            cur.execute(
                sql.GATEWAY_INVENTORY,
                {"g": g, "at": rec.generated_at, "lib": rec.central_library_version, "ward": rec.ward},
            )
            for p in rec.pumps:
                if any(_ident(p.identity).values()):
                    self._identity(cur, g, p.pump, p.identity, p.last_seen or rec.generated_at, "inventory")
                row = self.inventory.setdefault((g, p.pump), [None, None, None, None, None])
                row[0] = p.asset_tag or row[0]
                row[1] = p.udi or row[1]
                row[2] = p.bed or row[2]
                row[3] = _earlier(row[3], p.first_seen)
                row[4] = _later(row[4], p.last_seen)
        elif isinstance(rec, Status):
            cur.execute(
                sql.STATUS,
                {
                    "g": g,
                    "state": rec.state,
                    "session": rec.session,
                    "version": rec.version,
                    "hash": rec.config_hash,
                    "since": rec.since,
                    "ward": rec.ward,
                    "hb": rec.heartbeat_at,
                    "hbi": rec.heartbeat_interval_s,
                    "depth": rec.outbox_depth,
                    "age": rec.outbox_oldest_age_s,
                },
            )
        elif isinstance(rec, GatewayAlert):
            cur.execute(
                sql.ALERT,
                {
                    "g": g,
                    "mid": rec.message_id,
                    "alert": rec.alert,
                    "at": rec.occurred_at,
                    "details": json.dumps(rec.details),
                },
            )
        elif isinstance(rec, GatewayLibrary):
            library = {
                "g": g,
                "v": rec.version,
                "sha": rec.sha256,
                "signer": rec.signer_key_id,
                "at": rec.applied_at,
                "src": rec.source,
            }
            cur.execute(sql.GATEWAY_LIBRARY_HISTORY, library)
            cur.execute(sql.GATEWAY_LIBRARY, library)

    def _seen(self, g: int, pump: str, at: datetime) -> None:
        span = self.seen.get((g, pump))
        if span is None:
            self.seen[(g, pump)] = [at, at]
        else:
            span[0] = min(span[0], at)
            span[1] = max(span[1], at)

    def _identity(self, cur: psycopg.Cursor, g: int, pump: str, ident: Identity, at: datetime, source: str) -> None:
        key = (g, pump)
        values = _ident(ident)
        as_tuple = tuple(values.values())
        if key in self.identities:  # a second observation in this batch
            if self.identities[key] != as_tuple:
                cur.execute(
                    bulk.IDENTITY_HISTORY_AFTER_CHANGE, {"g": g, "pump": pump, "at": at, "src": source, **values}
                )
        elif self._known_identities.get(key) != as_tuple:
            cur.execute(sql.IDENTITY_HISTORY, {"g": g, "pump": pump, "at": at, "src": source, **values})
        self.identities[key] = as_tuple
        obs = self.observed.setdefault(key, {"iat": None, "sat": None, "ch": None, "seen": at})
        obs["seen"] = _later(obs["seen"], at)
        if obs["iat"] is None or at > obs["iat"]:
            obs.update(values)
            obs["iat"] = at

    def _verdict(self, cur: psycopg.Cursor, g: int, pump: str, v: Any, at: datetime) -> None:
        key = json.dumps([v.drug, v.care_area, v.severity, v.kinds, v.library_version])
        vkey = (g, pump, v.channel)
        before = self.verdicts.get(vkey, self._known_verdicts.get(vkey))
        if before == key:
            return
        self.verdicts[vkey] = key
        row = (
            g,
            pump,
            v.channel,
            at,
            v.drug,
            v.care_area,
            v.severity,
            json.dumps(list(v.kinds)),
            v.library_version,
            key,
        )
        if before is None:  # not known to this collector: the database decides (set-based at flush)
            self.verdict_unknown.append(row)
        else:  # a known change: set-based at flush
            self.verdict_rows.append(row)

    def stage(self, cur: psycopg.Cursor) -> None:
        cur.execute(bulk.STAGING)
        for statement, rows in ((bulk.COPY_EVENTS, self.events), (bulk.COPY_ALARMS, self.alarms)):
            if rows:
                with cur.copy(statement) as copy:
                    for seq, row in enumerate(rows):
                        copy.write_row((seq, *row))

    def flush(self, cur: psycopg.Cursor) -> None:
        if self.events:
            cur.execute(bulk.EVENTS_FROM_STAGE)
        if self.alarms:
            cur.execute(bulk.ALARMS_FROM_STAGE)
        if self.observed:
            rows = [
                (g, pump, o["mf"], o["model"], o["sn"], o["fw"], o["lib"], o["iat"], o["ch"], o["sat"], o["seen"])
                for (g, pump), o in self.observed.items()
            ]
            cur.execute(
                bulk.PUMPS_OBSERVED,
                _columns(rows, ("g", "pump", "mf", "model", "sn", "fw", "lib", "iat", "ch", "sat", "seen")),
            )
        if self.seen:
            seen = [(g, pump, first, last) for (g, pump), (first, last) in self.seen.items()]
            cur.execute(bulk.PUMPS_SEEN, _columns(seen, ("g", "pump", "first", "last")))
        if self.availability:
            availability = [(g, pump, av, at) for (g, pump), (av, at) in self.availability.items()]
            cur.execute(bulk.AVAILABILITY, _columns(availability, ("g", "pump", "av", "at")))
        if self.inventory:
            inventory = [(g, pump, *r) for (g, pump), r in self.inventory.items()]
            cur.execute(bulk.INVENTORY, _columns(inventory, ("g", "pump", "asset", "udi", "bed", "first", "last")))
        names = ("g", "pump", "ch", "at", "drug", "area", "sev", "kinds", "lib", "key")
        if self.verdict_unknown:  # before the known changes: those may follow one of these in time
            cur.execute(bulk.VERDICTS_UNKNOWN, _columns(self.verdict_unknown, names))
            unknown_keys = [(r[0], r[1], r[2], r[9], r[3]) for r in self.verdict_unknown]
            cur.execute(bulk.VERDICT_KEYS, _columns(unknown_keys, ("g", "pump", "ch", "key", "at")))
        if self.verdict_rows:
            cur.execute(
                bulk.VERDICTS,
                _columns(self.verdict_rows, ("g", "pump", "ch", "at", "drug", "area", "sev", "kinds", "lib", "key")),
            )
            latest: dict[tuple[int, str, str], tuple[Any, ...]] = {}
            for r in self.verdict_rows:
                latest[(r[0], r[1], r[2])] = r
            known_keys = [(r[0], r[1], r[2], r[9], r[3]) for r in latest.values()]
            cur.execute(bulk.VERDICT_KEYS, _columns(known_keys, ("g", "pump", "ch", "key", "at")))
        if self.gateways:
            cur.execute(sql.GATEWAYS_SEEN, {"ids": sorted(self.gateways)})


def _columns(rows: list[tuple[Any, ...]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [r[i] for r in rows] for i, name in enumerate(names)}
