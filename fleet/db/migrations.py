"""The fleet's PostgreSQL schema, as numbered migrations kept in the repository.

``fleet_schema_version`` records each applied step; :func:`migrate` applies the missing ones
in order, each in its own transaction, under an advisory lock so that several fleet instances
starting at once do not race. Steps are append-only: never edit a released step, add one.

Events and alarms are partitioned by month of ``occurred_at`` (partitions are created on demand
by the writer, see :func:`ensure_month`), so retention is ``DROP TABLE`` of a month and report
queries over a time window touch only the months they need. Their idempotency key is
(gateway, message id, occurred_at): the gateways' message ids are stable per event across
sessions and outbox replays, so a redelivery or replay never doubles a row.
"""

from __future__ import annotations

from datetime import date

import psycopg

LOCK_KEY = 0x70756D70  # "pump": advisory lock id for migrations and partition creation

MIGRATIONS: tuple[str, ...] = (
    # 1: the data model of issue 21
    """
    CREATE TABLE gateways (
        id              serial PRIMARY KEY,
        site            text NOT NULL,
        gateway         text NOT NULL,
        ward            text,
        state           text,
        session         text,
        version         text,
        config_hash     text,
        state_since     timestamptz,
        heartbeat_at    timestamptz,
        heartbeat_interval_s double precision,
        outbox_depth    integer,
        outbox_oldest_age_s double precision,
        central_library_version text,
        library_version text,
        library_sha256  text,
        library_signer_key_id text,
        library_applied_at timestamptz,
        library_source  text,
        inventory_at    timestamptz,
        first_seen      timestamptz NOT NULL DEFAULT now(),
        last_message_at timestamptz,
        UNIQUE (site, gateway)
    );
    CREATE TABLE pumps (
        gateway_id      integer NOT NULL REFERENCES gateways(id),
        pump            text NOT NULL,
        manufacturer    text,
        model           text,
        serial_number   text,
        firmware        text,
        library_version text,
        identity_at     timestamptz,
        asset_tag       text,
        udi             text,
        bed             text,
        availability    text,
        availability_since timestamptz,
        channel_states  jsonb,
        state_at        timestamptz,
        first_seen      timestamptz,
        last_seen       timestamptz,
        PRIMARY KEY (gateway_id, pump)
    );
    CREATE INDEX pumps_last_seen ON pumps (last_seen);
    CREATE INDEX pumps_serial ON pumps (manufacturer, model, serial_number);
    CREATE TABLE pump_identity_history (
        id              bigserial PRIMARY KEY,
        gateway_id      integer NOT NULL REFERENCES gateways(id),
        pump            text NOT NULL,
        observed_at     timestamptz NOT NULL,
        manufacturer    text,
        model           text,
        serial_number   text,
        firmware        text,
        library_version text,
        source          text NOT NULL,
        UNIQUE (gateway_id, pump, observed_at)
    );
    CREATE INDEX identity_history_library ON pump_identity_history (library_version, observed_at);
    CREATE TABLE events (
        id              bigserial,
        gateway_id      integer NOT NULL,
        pump            text NOT NULL,
        message_id      text NOT NULL,
        kind            text NOT NULL,
        occurred_at     timestamptz NOT NULL,
        received_at     timestamptz NOT NULL DEFAULT now(),
        channel         text,
        channel_state   text,
        drug            text,
        care_area       text,
        detail          jsonb,
        previous_identity jsonb
    ) PARTITION BY RANGE (occurred_at);
    CREATE UNIQUE INDEX events_key ON events (gateway_id, message_id, occurred_at);
    CREATE INDEX events_pump ON events (gateway_id, pump, occurred_at);
    CREATE INDEX events_kind ON events (kind, occurred_at);
    CREATE TABLE alarms (
        id              bigserial,
        gateway_id      integer NOT NULL,
        pump            text NOT NULL,
        message_id      text NOT NULL,
        phase           text NOT NULL,
        alert_instance_id text,
        occurred_at     timestamptz NOT NULL,
        received_at     timestamptz NOT NULL DEFAULT now(),
        channel         text,
        code            text,
        alarm_kind      text,
        priority        text,
        text            text
    ) PARTITION BY RANGE (occurred_at);
    CREATE UNIQUE INDEX alarms_key ON alarms (gateway_id, message_id, occurred_at);
    CREATE INDEX alarms_pump ON alarms (gateway_id, pump, occurred_at);
    CREATE INDEX alarms_instance ON alarms (gateway_id, alert_instance_id);
    CREATE INDEX alarms_time ON alarms (occurred_at);
    CREATE TABLE gateway_alerts (
        id              bigserial PRIMARY KEY,
        gateway_id      integer NOT NULL REFERENCES gateways(id),
        message_id      text NOT NULL,
        alert           text NOT NULL,
        occurred_at     timestamptz NOT NULL,
        received_at     timestamptz NOT NULL DEFAULT now(),
        details         jsonb,
        UNIQUE (gateway_id, message_id)
    );
    CREATE TABLE library_releases (
        version         text PRIMARY KEY,
        sha256          text,
        released_at     timestamptz,
        first_seen_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE gateway_library_history (
        id              bigserial PRIMARY KEY,
        gateway_id      integer NOT NULL REFERENCES gateways(id),
        version         text NOT NULL,
        sha256          text,
        applied_at      timestamptz NOT NULL,
        source          text,
        UNIQUE (gateway_id, version, applied_at)
    );
    CREATE TABLE pump_channels (
        gateway_id      integer NOT NULL,
        pump            text NOT NULL,
        channel         text NOT NULL,
        verdict_key     text,
        verdict_at      timestamptz,
        PRIMARY KEY (gateway_id, pump, channel)
    );
    CREATE TABLE verdicts (
        id              bigserial PRIMARY KEY,
        gateway_id      integer NOT NULL REFERENCES gateways(id),
        pump            text NOT NULL,
        channel         text NOT NULL,
        observed_at     timestamptz NOT NULL,
        drug            text,
        care_area       text,
        severity        text NOT NULL,
        kinds           text[] NOT NULL,
        library_version text,
        UNIQUE (gateway_id, pump, channel, observed_at)
    );
    CREATE INDEX verdicts_time ON verdicts (observed_at);
    CREATE TABLE rejected_messages (
        id              bigserial PRIMARY KEY,
        received_at     timestamptz NOT NULL DEFAULT now(),
        topic           text NOT NULL,
        reason          text NOT NULL
    );
    """,
)


def current_version(conn: psycopg.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS fleet_schema_version (version integer PRIMARY KEY, "
        "applied_at timestamptz NOT NULL DEFAULT now())"
    )
    row = conn.execute("SELECT coalesce(max(version), 0) FROM fleet_schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply every missing step; returns the step numbers applied (empty when up to date)."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        have = current_version(conn)
        for number, sql in enumerate(MIGRATIONS, start=1):
            if number <= have:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO fleet_schema_version (version) VALUES (%s)", (number,))
            applied.append(number)
    return applied


def month_of(day: date) -> date:
    return day.replace(day=1)


def ensure_month(conn: psycopg.Connection, table: str, month: date) -> None:
    """Create ``{table}_yYYYYmMM`` for the month if missing (inside the caller's transaction)."""
    if table not in ("events", "alarms"):
        raise ValueError(f"{table!r} is not a partitioned fleet table")
    start = month_of(month)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    name = f"{table}_y{start.year:04d}m{start.month:02d}"
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY + 1,))
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "  # names built from digits only
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )
