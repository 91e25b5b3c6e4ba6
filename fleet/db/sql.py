"""The writer's SQL statements (fleet/db/writer.py), each idempotent; see that module's docstring.

Parameters are cast explicitly where PostgreSQL must compare them, because psycopg sends
Python strings and ``None`` untyped.
"""

# No row lock on an existing gateway (several instances resolve the same ids concurrently).
GATEWAY_ID = """
WITH new AS (
    INSERT INTO gateways (site, gateway) VALUES (%(site)s, %(gw)s) ON CONFLICT (site, gateway) DO NOTHING RETURNING id
)
SELECT id FROM new UNION ALL SELECT id FROM gateways WHERE site = %(site)s AND gateway = %(gw)s
"""

GATEWAYS_SEEN = "UPDATE gateways SET last_message_at = now() WHERE id = ANY(%(ids)s::int[])"

EVENT = """
INSERT INTO events (gateway_id, pump, message_id, kind, occurred_at, channel, channel_state, drug, care_area,
                    detail, previous_identity)
VALUES (%(g)s, %(pump)s, %(mid)s, %(kind)s, %(at)s, %(ch)s, %(cs)s, %(drug)s, %(area)s, %(detail)s::jsonb,
        %(prev)s::jsonb)
ON CONFLICT (gateway_id, message_id, occurred_at) DO NOTHING
"""

ALARM = """
INSERT INTO alarms (gateway_id, pump, message_id, phase, alert_instance_id, occurred_at, channel, code,
                    alarm_kind, priority, text)
VALUES (%(g)s, %(pump)s, %(mid)s, %(phase)s, %(aid)s, %(at)s, %(ch)s, %(code)s, %(kind)s, %(prio)s, %(text)s)
ON CONFLICT (gateway_id, message_id, occurred_at) DO NOTHING
"""

PUMP_SEEN = """
INSERT INTO pumps (gateway_id, pump, first_seen, last_seen) VALUES (%(g)s, %(pump)s, %(at)s, %(at)s)
ON CONFLICT (gateway_id, pump) DO UPDATE
SET last_seen = GREATEST(pumps.last_seen, EXCLUDED.last_seen), first_seen = LEAST(pumps.first_seen, EXCLUDED.first_seen)
WHERE pumps.last_seen IS NULL OR pumps.last_seen < EXCLUDED.last_seen
   OR pumps.first_seen IS NULL OR pumps.first_seen > EXCLUDED.first_seen
"""

IDENTITY_HISTORY = """
INSERT INTO pump_identity_history (gateway_id, pump, observed_at, manufacturer, model, serial_number, firmware,
                                   library_version, source)
SELECT %(g)s, %(pump)s, %(at)s::timestamptz, %(mf)s::text, %(model)s::text, %(sn)s::text, %(fw)s::text,
       %(lib)s::text, %(src)s::text
WHERE NOT EXISTS (
    SELECT 1 FROM pumps p WHERE p.gateway_id = %(g)s AND p.pump = %(pump)s::text AND (
        p.identity_at >= %(at)s::timestamptz
        OR (p.manufacturer, p.model, p.serial_number, p.firmware, p.library_version)
           IS NOT DISTINCT FROM (%(mf)s::text, %(model)s::text, %(sn)s::text, %(fw)s::text, %(lib)s::text)))
ON CONFLICT DO NOTHING
"""

PUMP_IDENTITY = """
INSERT INTO pumps (gateway_id, pump, manufacturer, model, serial_number, firmware, library_version, identity_at,
                   first_seen, last_seen)
VALUES (%(g)s, %(pump)s, %(mf)s, %(model)s, %(sn)s, %(fw)s, %(lib)s, %(at)s, %(at)s, %(at)s)
ON CONFLICT (gateway_id, pump) DO UPDATE
SET manufacturer = EXCLUDED.manufacturer, model = EXCLUDED.model, serial_number = EXCLUDED.serial_number,
    firmware = EXCLUDED.firmware, library_version = EXCLUDED.library_version, identity_at = EXCLUDED.identity_at,
    first_seen = LEAST(pumps.first_seen, EXCLUDED.first_seen), last_seen = GREATEST(pumps.last_seen, EXCLUDED.last_seen)
WHERE pumps.identity_at IS NULL OR pumps.identity_at < EXCLUDED.identity_at
"""

PUMP_STATE = """
INSERT INTO pumps (gateway_id, pump, channel_states, state_at, first_seen, last_seen)
VALUES (%(g)s, %(pump)s, %(channels)s::jsonb, %(at)s, %(at)s, %(at)s)
ON CONFLICT (gateway_id, pump) DO UPDATE
SET channel_states = EXCLUDED.channel_states, state_at = EXCLUDED.state_at,
    first_seen = LEAST(pumps.first_seen, EXCLUDED.first_seen), last_seen = GREATEST(pumps.last_seen, EXCLUDED.last_seen)
WHERE pumps.state_at IS NULL OR pumps.state_at < EXCLUDED.state_at
"""

AVAILABILITY = """
INSERT INTO pumps (gateway_id, pump, availability, availability_since) VALUES (%(g)s, %(pump)s, %(av)s, %(at)s)
ON CONFLICT (gateway_id, pump) DO UPDATE
SET availability = EXCLUDED.availability, availability_since = EXCLUDED.availability_since
WHERE pumps.availability_since IS NULL OR pumps.availability_since <= EXCLUDED.availability_since
"""

GATEWAY_INVENTORY = """
UPDATE gateways SET inventory_at = %(at)s, central_library_version = %(lib)s, ward = coalesce(%(ward)s, ward)
WHERE id = %(g)s AND (inventory_at IS NULL OR inventory_at <= %(at)s::timestamptz)
"""

PUMP_INVENTORY = """
INSERT INTO pumps (gateway_id, pump, asset_tag, udi, bed, first_seen, last_seen)
VALUES (%(g)s, %(pump)s, %(asset)s, %(udi)s, %(bed)s, %(first)s, %(last)s)
ON CONFLICT (gateway_id, pump) DO UPDATE
SET asset_tag = coalesce(EXCLUDED.asset_tag, pumps.asset_tag), udi = coalesce(EXCLUDED.udi, pumps.udi),
    bed = coalesce(EXCLUDED.bed, pumps.bed), first_seen = LEAST(pumps.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(pumps.last_seen, EXCLUDED.last_seen)
"""

# An "online" replaces what is stored when it is not older; an "offline" only when it belongs to
# the session stored (a late Last Will of an old connection must not mark a live gateway dead).
STATUS = """
UPDATE gateways
SET state = %(state)s, session = %(session)s, version = coalesce(%(version)s, version),
    config_hash = coalesce(%(hash)s, config_hash), state_since = %(since)s, ward = coalesce(%(ward)s, ward),
    heartbeat_at = coalesce(%(hb)s, heartbeat_at), heartbeat_interval_s = coalesce(%(hbi)s, heartbeat_interval_s),
    outbox_depth = %(depth)s, outbox_oldest_age_s = %(age)s
WHERE id = %(g)s AND (
    state_since IS NULL
    OR (%(state)s::text = 'online' AND %(since)s::timestamptz >= state_since
        AND coalesce(%(hb)s::timestamptz, %(since)s::timestamptz) >= coalesce(heartbeat_at, state_since))
    OR (%(state)s::text = 'offline' AND session = %(session)s::text))
"""

ALERT = """
INSERT INTO gateway_alerts (gateway_id, message_id, alert, occurred_at, details)
VALUES (%(g)s, %(mid)s, %(alert)s, %(at)s, %(details)s::jsonb)
ON CONFLICT (gateway_id, message_id) DO NOTHING
"""

GATEWAY_LIBRARY_HISTORY = """
INSERT INTO gateway_library_history (gateway_id, version, sha256, applied_at, source)
VALUES (%(g)s, %(v)s, %(sha)s, %(at)s, %(src)s)
ON CONFLICT DO NOTHING
"""

GATEWAY_LIBRARY = """
UPDATE gateways SET library_version = %(v)s, library_sha256 = %(sha)s, library_signer_key_id = %(signer)s,
    library_applied_at = %(at)s, library_source = %(src)s
WHERE id = %(g)s AND (library_applied_at IS NULL OR library_applied_at <= %(at)s::timestamptz)
"""

RELEASE = """
INSERT INTO library_releases (version, sha256, released_at) VALUES (%(v)s, %(sha)s, %(at)s)
ON CONFLICT (version) DO UPDATE SET sha256 = coalesce(EXCLUDED.sha256, library_releases.sha256),
    released_at = coalesce(library_releases.released_at, EXCLUDED.released_at)
"""

REJECTED = "INSERT INTO rejected_messages (topic, reason) VALUES (%(topic)s, %(reason)s)"
