"""Set-based statements of the writer: one statement per kind and batch (fleet/db/batch.py).

Latest-state upserts take parallel arrays (``unnest``), so a batch of 1,000 pumps is one
statement instead of 1,000, and psycopg's per-statement cost is paid once. Rows are
de-duplicated per key in Python before them (``ON CONFLICT DO UPDATE`` may not touch a row
twice in one statement). Events and alarms, the bulk of the rows, go through COPY into a
temporary stage (cheaper to encode than arrays, measured by bench/fleet_bench.py) and keep
arrival order (``ORDER BY seq``), so ``id`` grows in the order the broker delivered them.
"""

PUMPS_SEEN = """
INSERT INTO pumps (gateway_id, pump, first_seen, last_seen)
SELECT * FROM unnest(%(g)b::int[], %(pump)b::text[], %(first)b::timestamptz[], %(last)b::timestamptz[])
ON CONFLICT (gateway_id, pump) DO UPDATE
SET last_seen = GREATEST(pumps.last_seen, EXCLUDED.last_seen), first_seen = LEAST(pumps.first_seen, EXCLUDED.first_seen)
WHERE pumps.last_seen IS NULL OR pumps.last_seen < EXCLUDED.last_seen
   OR pumps.first_seen IS NULL OR pumps.first_seen > EXCLUDED.first_seen
"""

# Identity fields move only with a newer identity observation, channel states with a newer state.
PUMPS_OBSERVED = """
INSERT INTO pumps (gateway_id, pump, manufacturer, model, serial_number, firmware, library_version, identity_at,
                   channel_states, state_at, first_seen, last_seen)
SELECT g, pump, mf, model, sn, fw, lib, iat, ch::jsonb, sat, seen, seen
FROM unnest(%(g)b::int[], %(pump)b::text[], %(mf)b::text[], %(model)b::text[], %(sn)b::text[], %(fw)b::text[],
            %(lib)b::text[], %(iat)b::timestamptz[], %(ch)b::text[], %(sat)b::timestamptz[], %(seen)b::timestamptz[])
     AS t(g, pump, mf, model, sn, fw, lib, iat, ch, sat, seen)
ON CONFLICT (gateway_id, pump) DO UPDATE SET
    manufacturer = CASE WHEN pumps.identity_at IS NULL OR pumps.identity_at < EXCLUDED.identity_at
                        THEN EXCLUDED.manufacturer ELSE pumps.manufacturer END,
    model = CASE WHEN pumps.identity_at IS NULL OR pumps.identity_at < EXCLUDED.identity_at
                 THEN EXCLUDED.model ELSE pumps.model END,
    serial_number = CASE WHEN pumps.identity_at IS NULL OR pumps.identity_at < EXCLUDED.identity_at
                         THEN EXCLUDED.serial_number ELSE pumps.serial_number END,
    firmware = CASE WHEN pumps.identity_at IS NULL OR pumps.identity_at < EXCLUDED.identity_at
                    THEN EXCLUDED.firmware ELSE pumps.firmware END,
    library_version = CASE WHEN pumps.identity_at IS NULL OR pumps.identity_at < EXCLUDED.identity_at
                           THEN EXCLUDED.library_version ELSE pumps.library_version END,
    identity_at = GREATEST(pumps.identity_at, EXCLUDED.identity_at),
    channel_states = CASE WHEN EXCLUDED.state_at IS NOT NULL
                               AND (pumps.state_at IS NULL OR pumps.state_at < EXCLUDED.state_at)
                          THEN EXCLUDED.channel_states ELSE pumps.channel_states END,
    state_at = GREATEST(pumps.state_at, EXCLUDED.state_at),
    first_seen = LEAST(pumps.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(pumps.last_seen, EXCLUDED.last_seen)
"""

AVAILABILITY = """
INSERT INTO pumps (gateway_id, pump, availability, availability_since)
SELECT * FROM unnest(%(g)b::int[], %(pump)b::text[], %(av)b::text[], %(at)b::timestamptz[])
ON CONFLICT (gateway_id, pump) DO UPDATE
SET availability = EXCLUDED.availability, availability_since = EXCLUDED.availability_since
WHERE pumps.availability_since IS NULL OR pumps.availability_since <= EXCLUDED.availability_since
"""

INVENTORY = """
INSERT INTO pumps (gateway_id, pump, asset_tag, udi, bed, first_seen, last_seen)
SELECT * FROM unnest(%(g)b::int[], %(pump)b::text[], %(asset)b::text[], %(udi)b::text[], %(bed)b::text[],
                     %(first)b::timestamptz[], %(last)b::timestamptz[])
ON CONFLICT (gateway_id, pump) DO UPDATE
SET asset_tag = coalesce(EXCLUDED.asset_tag, pumps.asset_tag), udi = coalesce(EXCLUDED.udi, pumps.udi),
    bed = coalesce(EXCLUDED.bed, pumps.bed), first_seen = LEAST(pumps.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(pumps.last_seen, EXCLUDED.last_seen)
"""

IDENTITY_HISTORY_AFTER_CHANGE = """
INSERT INTO pump_identity_history (gateway_id, pump, observed_at, manufacturer, model, serial_number, firmware,
                                   library_version, source)
SELECT %(g)s, %(pump)s, %(at)s::timestamptz, %(mf)s, %(model)s, %(sn)s, %(fw)s, %(lib)s, %(src)s
WHERE NOT EXISTS (SELECT 1 FROM pumps p WHERE p.gateway_id = %(g)s AND p.pump = %(pump)s::text
                    AND p.identity_at >= %(at)s::timestamptz)
ON CONFLICT DO NOTHING
"""
"""A second, different identity of one pump within a batch: a change by construction."""

# Verdict changes the writer knows to be changes (the channel's previous verdict set is cached).
VERDICTS = """
INSERT INTO verdicts (gateway_id, pump, channel, observed_at, drug, care_area, severity, kinds, library_version)
SELECT g, pump, ch, at, drug, area, sev, ARRAY(SELECT jsonb_array_elements_text(kinds::jsonb)), lib
FROM unnest(%(g)b::int[], %(pump)b::text[], %(ch)b::text[], %(at)b::timestamptz[], %(drug)b::text[],
            %(area)b::text[], %(sev)b::text[], %(kinds)b::text[], %(lib)b::text[], %(key)b::text[])
     AS t(g, pump, ch, at, drug, area, sev, kinds, lib, key)
WHERE NOT EXISTS (SELECT 1 FROM pump_channels c WHERE c.gateway_id = t.g AND c.pump = t.pump AND c.channel = t.ch
                    AND c.verdict_at >= t.at)
ON CONFLICT DO NOTHING
"""

# First verdict of a channel this collector has no cached verdict for: the database decides
# (an equal stored verdict set or a newer one means no row).
VERDICTS_UNKNOWN = """
INSERT INTO verdicts (gateway_id, pump, channel, observed_at, drug, care_area, severity, kinds, library_version)
SELECT g, pump, ch, at, drug, area, sev, ARRAY(SELECT jsonb_array_elements_text(kinds::jsonb)), lib
FROM unnest(%(g)b::int[], %(pump)b::text[], %(ch)b::text[], %(at)b::timestamptz[], %(drug)b::text[],
            %(area)b::text[], %(sev)b::text[], %(kinds)b::text[], %(lib)b::text[], %(key)b::text[])
     AS t(g, pump, ch, at, drug, area, sev, kinds, lib, key)
WHERE NOT EXISTS (SELECT 1 FROM pump_channels c WHERE c.gateway_id = t.g AND c.pump = t.pump AND c.channel = t.ch
                    AND (c.verdict_key = t.key OR c.verdict_at >= t.at))
ON CONFLICT DO NOTHING
"""

VERDICT_KEYS = """
INSERT INTO pump_channels (gateway_id, pump, channel, verdict_key, verdict_at)
SELECT * FROM unnest(%(g)b::int[], %(pump)b::text[], %(ch)b::text[], %(key)b::text[], %(at)b::timestamptz[])
ON CONFLICT (gateway_id, pump, channel) DO UPDATE SET verdict_key = EXCLUDED.verdict_key,
    verdict_at = EXCLUDED.verdict_at
WHERE pump_channels.verdict_at IS NULL OR pump_channels.verdict_at < EXCLUDED.verdict_at
"""


# Staging for events and alarms: the batch's rows are COPYed into these per-session temporary
# tables (no WAL, no index, no conflict check), then moved with one statement per table that
# empties the stage and inserts in arrival order (``seq``) with ON CONFLICT DO NOTHING, so a
# redelivered row, or the same message twice in one batch, is written once. COPY rows are
# rolled back with the batch's transaction like every other statement.
STAGING = """
CREATE TEMP TABLE IF NOT EXISTS fleet_stage_events (
    seq integer, gateway_id integer, pump text, message_id text, kind text, occurred_at timestamptz, channel text,
    channel_state text, drug text, care_area text, detail jsonb, previous_identity jsonb
);
CREATE TEMP TABLE IF NOT EXISTS fleet_stage_alarms (
    seq integer, gateway_id integer, pump text, message_id text, phase text, alert_instance_id text,
    occurred_at timestamptz, channel text, code text, alarm_kind text, priority text, text text
)
"""

EVENT_COLUMNS = (
    "gateway_id, pump, message_id, kind, occurred_at, channel, channel_state, drug, care_area, detail, "
    "previous_identity"
)
ALARM_COLUMNS = (
    "gateway_id, pump, message_id, phase, alert_instance_id, occurred_at, channel, code, alarm_kind, priority, text"
)

COPY_EVENTS = f"COPY fleet_stage_events (seq, {EVENT_COLUMNS}) FROM STDIN"
COPY_ALARMS = f"COPY fleet_stage_alarms (seq, {ALARM_COLUMNS}) FROM STDIN"

EVENTS_FROM_STAGE = f"""
WITH staged AS (DELETE FROM fleet_stage_events RETURNING *)
INSERT INTO events ({EVENT_COLUMNS})
SELECT {EVENT_COLUMNS} FROM staged ORDER BY seq
ON CONFLICT (gateway_id, message_id, occurred_at) DO NOTHING
"""

ALARMS_FROM_STAGE = f"""
WITH staged AS (DELETE FROM fleet_stage_alarms RETURNING *)
INSERT INTO alarms ({ALARM_COLUMNS})
SELECT {ALARM_COLUMNS} FROM staged ORDER BY seq
ON CONFLICT (gateway_id, message_id, occurred_at) DO NOTHING
"""
