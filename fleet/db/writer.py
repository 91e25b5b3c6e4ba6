"""Write one batch of records in ONE PostgreSQL transaction, idempotently.

The collector acknowledges a batch's messages to the broker only after :meth:`Writer.write`
returned (the transaction committed). Every statement is idempotent, so a batch written but
not acknowledged (collector killed between commit and PUBACK) and redelivered leaves the
database unchanged:

* events, alarms, gateway alerts: ``ON CONFLICT DO NOTHING`` on (gateway, message id[, time]);
* latest-state rows (status, inventory, pump state, availability, library): updated only when
  the message is newer than what is stored, so a late retained message never rolls back state;
* identity and library history: one row per change, keyed by the observation time.

Statements run in psycopg's pipeline mode without one round trip per message; events and alarms
are COPYed into a temporary stage first (COPY cannot run in a pipeline) and moved with one
``INSERT ... SELECT ... ORDER BY seq ON CONFLICT DO NOTHING`` each (order per pump is kept:
``events.id`` grows in the order messages arrived). Everything is in the batch's one
transaction, so the broker is acknowledged only after all of it committed. The statements per
record kind are built in :mod:`fleet.db.batch`; this module owns the transaction and the caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date

import psycopg

from fleet.db import sql
from fleet.db.batch import Batch, Key
from fleet.db.migrations import ensure_month
from fleet.ingest.records import AlarmMsg, Event, Record


class Writer:
    """Owns nothing but caches: gateway ids, month partitions known to exist, and the last
    identity and verdict written per pump (to skip statements that would change nothing)."""

    def __init__(self, *, exclusive: bool = True) -> None:
        # exclusive: no other writer sees this collector's pumps (one instance, or instances
        # partitioned by site). With a shared subscription another instance may change a
        # pump's row, so the identity/verdict caches are not trusted.
        self.exclusive = exclusive
        self._gateway_ids: dict[tuple[str, str], int] = {}
        self._months: set[tuple[str, date]] = set()
        self._identities: dict[Key, tuple[str | None, ...]] = {}
        self._verdicts: dict[tuple[int, str, str], str] = {}
        self._warm = False

    def forget(self) -> None:
        """After a failed transaction (or a reconnect), trust nothing cached."""
        self._gateway_ids.clear()
        self._months.clear()
        self._identities.clear()
        self._verdicts.clear()
        self._warm = False

    def _load(self, conn: psycopg.Connection) -> None:
        """Fill the caches from the database (after a start or a failure), so that the first
        batches are set-based too instead of one statement per pump."""
        with conn.transaction():
            for g, pump, *ident in conn.execute(
                "SELECT gateway_id, pump, manufacturer, model, serial_number, firmware, library_version "
                "FROM pumps WHERE identity_at IS NOT NULL"
            ):
                self._identities[(g, pump)] = tuple(ident)
            for g, pump, ch, key in conn.execute(
                "SELECT gateway_id, pump, channel, verdict_key FROM pump_channels WHERE verdict_key IS NOT NULL"
            ):
                self._verdicts[(g, pump, ch)] = key
        self._warm = True

    def write(self, conn: psycopg.Connection, records: Sequence[Record]) -> None:
        """Write ``records`` in one transaction; raises (and rolls back) on any database error."""
        new_months: set[tuple[str, date]] = set()
        new_gateways: dict[tuple[str, str], int] = {}
        try:
            if not self._warm and self.exclusive:
                self._load(conn)
            batch = Batch(self._identities, self._verdicts) if self.exclusive else Batch({}, {})
            # Partitions first, each in its own short transaction: DDL inside the batch's
            # transaction would hold the parent's lock while report queries wait (and deadlock).
            for table, month in sorted(self._months_needed(records)):
                if (table, month) not in self._months:
                    with conn.transaction():
                        ensure_month(conn, table, month)
                    new_months.add((table, month))
            with conn.transaction():
                ids = self._gateways(conn, records, new_gateways)
                with conn.pipeline(), conn.cursor() as cur:
                    for rec in records:
                        batch.add(cur, rec, ids)
                if batch.events or batch.alarms:
                    with conn.cursor() as cur:  # COPY cannot run in pipeline mode
                        batch.stage(cur)
                with conn.pipeline(), conn.cursor() as cur:
                    batch.flush(cur)
        except BaseException:
            self.forget()
            raise
        self._months |= new_months
        self._gateway_ids.update(new_gateways)
        self._identities.update(batch.identities)
        self._verdicts.update(batch.verdicts)
        if len(self._identities) > 200_000 or len(self._verdicts) > 200_000:
            self._identities.clear()
            self._verdicts.clear()

    def _gateways(
        self, conn: psycopg.Connection, records: Sequence[Record], new: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], int]:
        ids = dict(self._gateway_ids)
        for key in sorted({(getattr(r, "site", ""), getattr(r, "gateway", "")) for r in records}):
            if not key[1] or key in ids:
                continue
            row = conn.execute(sql.GATEWAY_ID, {"site": key[0], "gw": key[1]}).fetchone()
            if row is None:  # another instance inserted it concurrently: visible to a new statement
                row = conn.execute("SELECT id FROM gateways WHERE site = %s AND gateway = %s", key).fetchone()
            if row is None:
                raise psycopg.OperationalError(f"gateway {key[0]}/{key[1]} could not be registered; retrying")
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
