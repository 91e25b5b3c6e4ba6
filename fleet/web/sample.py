"""A deterministic sample fleet written straight into the fleet schema (tests, bench, screenshots).

Why not the collector: the browser tests and the page bench need a known, repeatable database
of any size in seconds; the collector path is proven by part 1's tests. Every page has
something to show: two library releases with uptake over days and stragglers, a swap and a
return, a firmware update, an alarm storm on one ward, a pump not seen for ten days, an
offline gateway with open alerts, DERS verdicts from within limits to hard limit.
Device data only -- there is no patient data to sample.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from fleet.db.migrations import ensure_month, migrate

DRUGS = ("heparin", "insulin", "morphine", "noradrenaline", "propofol", "oxytocin", None)
ALARMS = ("occlusion_downstream", "air_in_line", "infusion_complete", "battery_low", "door_open")
MODELS = (
    ("B. Braun", "Infusomat Space", ("686E", "688F")),
    ("Fresenius", "Agilia VP", ("3.2", "3.3")),
    ("BD", "Alaris 8100", ("12.1.2",)),
)


@dataclass(frozen=True)
class Shape:
    wards: tuple[str, ...] = ("ICU", "MED", "OBS")
    gateways_per_ward: int = 2
    pumps_per_gateway: int = 4
    alarms_per_pump: int = 6
    verdicts_per_pump: int = 4


def fill(conn: psycopg.Connection, now: datetime | None = None, shape: Shape = Shape(), seed: int = 22) -> None:
    """Migrate and fill an empty database; every time is relative to ``now`` (default: now)."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    migrate(conn)
    old, new = "2026.11", "2026.12"
    released = now - timedelta(days=10)
    with conn.transaction():
        for month in {(now - timedelta(days=d)).replace(day=1).date() for d in range(45)}:
            ensure_month(conn, "events", month)
            ensure_month(conn, "alarms", month)
        conn.execute(
            "INSERT INTO library_releases (version, sha256, released_at) VALUES (%s, %s, %s), (%s, %s, %s)",
            (old, "a" * 64, now - timedelta(days=40), new, "b" * 64, released),
        )
        pumps: list[tuple[Any, ...]] = []
        alarms: list[tuple[Any, ...]] = []
        verdicts: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        serial = 1000
        for w, ward in enumerate(shape.wards):
            for gi in range(shape.gateways_per_ward):
                offline = w == len(shape.wards) - 1 and gi == 0  # one gateway of the last ward is down
                last = now - (timedelta(hours=3) if offline else timedelta(seconds=20 + rng.randrange(60)))
                inserted = conn.execute(
                    """INSERT INTO gateways (site, gateway, ward, state, heartbeat_at, heartbeat_interval_s,
                           last_message_at, outbox_depth, library_version, central_library_version)
                       VALUES ('region', %s, %s, %s, %s, 30, %s, %s, %s, %s) RETURNING id""",
                    (
                        f"{ward.lower()}-gw{gi + 1}",
                        ward,
                        "offline" if offline else "online",
                        last,
                        last,
                        rng.randrange(0, 40),
                        old if offline else new,
                        new,
                    ),
                ).fetchone()
                assert inserted is not None  # RETURNING always yields the row
                gid = inserted[0]
                if offline:
                    conn.execute(
                        "INSERT INTO gateway_alerts (gateway_id, message_id, alert, occurred_at, details) "
                        "VALUES (%s, 'm-a1', 'outbox_budget_reached', %s, '{}'), "
                        "(%s, 'm-a2', 'library_refused', %s, '{}')",
                        (gid, now - timedelta(hours=4), gid, now - timedelta(hours=5)),
                    )
                for pi in range(shape.pumps_per_gateway):
                    serial += 1
                    mf, model, fws = MODELS[(w + pi) % len(MODELS)]
                    fw = fws[-1] if rng.random() < 0.7 else fws[0]
                    name = f"pump{pi + 1}"
                    # Uptake: most pumps move to the new release within days; ward order sets speed.
                    straggler = offline or (pi == shape.pumps_per_gateway - 1 and gi == 0 and w > 0)
                    reached = None if straggler else released + timedelta(hours=2 + rng.random() * 24 * (w + 1))
                    lib = new if reached else old
                    gone = w == 1 and gi == 0 and pi == 0  # a pump that disappears
                    last_seen = now - timedelta(days=10) if gone else last
                    pumps.append(
                        (
                            gid,
                            name,
                            mf,
                            model,
                            f"SN{serial}",
                            fw,
                            lib,
                            reached or released - timedelta(days=30),
                            f"AT-{serial}",
                            f"bed {pi + 1}",
                            "offline" if (offline or gone) else "online",
                            now - timedelta(days=60),
                            last_seen,
                        )
                    )
                    history.append(
                        (gid, name, now - timedelta(days=60), mf, model, f"SN{serial}", fws[0], old, "inventory")
                    )
                    if fw != fws[0]:
                        history.append(
                            (gid, name, now - timedelta(days=20), mf, model, f"SN{serial}", fw, old, "event")
                        )
                        events.append(
                            (
                                gid,
                                name,
                                f"fw-{gid}-{pi}",
                                "firmware_changed",
                                now - timedelta(days=20),
                                None,
                                None,
                                None,
                                None,
                                json.dumps({"fw": fws[0]}),
                            )
                        )
                    if reached:
                        history.append((gid, name, reached, mf, model, f"SN{serial}", fw, new, "event"))
                    n_alarms = shape.alarms_per_pump * (8 if (w == 0 and gi == 0) else 1)  # the alarm storm
                    for k in range(n_alarms):
                        at = now - timedelta(days=rng.random() * 6.5)
                        if w == 0 and gi == 0 and k % 2 == 0:
                            at = at.replace(hour=3)  # the storm piles up at night
                        instance, code = f"{gid}-{name}-{k}", rng.choice(ALARMS)
                        alarms.append(
                            (
                                gid,
                                name,
                                f"al-{gid}-{pi}-{k}",
                                "onset",
                                instance,
                                at,
                                "1",
                                code,
                                "high" if k % 3 == 0 else "medium",
                            )
                        )
                        if k % 7:  # most alarms end after seconds to minutes; some are still active
                            alarms.append(
                                (
                                    gid,
                                    name,
                                    f"al-{gid}-{pi}-{k}-end",
                                    "end",
                                    instance,
                                    min(now, at + timedelta(seconds=10 + rng.random() * 600)),
                                    "1",
                                    code,
                                    "high" if k % 3 == 0 else "medium",
                                )
                            )
                    for k in range(shape.verdicts_per_pump):
                        drug = rng.choice(DRUGS)
                        roll = rng.random()
                        kind = (
                            "drug_not_in_library"
                            if drug is None
                            else "above_hard_max"
                            if roll < 0.05
                            else "above_soft_max"
                            if roll < 0.2
                            else "within_limits"
                        )
                        sev = {"within_limits": "ok", "above_soft_max": "warning", "above_hard_max": "critical"}.get(
                            kind, "info"
                        )
                        verdicts.append(
                            (gid, name, "1", now - timedelta(days=rng.random() * 20), drug, ward, sev, [kind], lib)
                        )
                        events.append(
                            (
                                gid,
                                name,
                                f"ev-{gid}-{pi}-{k}",
                                "delivery_start",
                                now - timedelta(days=rng.random() * 20),
                                "1",
                                "infusing",
                                drug,
                                ward,
                                None,
                            )
                        )
        # A swap (another device under ICU's first pump) and a return of an earlier device.
        gid0 = pumps[0][0]
        events.append(
            (
                gid0,
                "pump1",
                "swap-1",
                "device_swapped",
                now - timedelta(days=2),
                None,
                None,
                None,
                None,
                json.dumps({"sn": "SN0999", "mf": pumps[0][2], "model": pumps[0][3]}),
            )
        )
        events.append(
            (
                gid0,
                "pump2",
                "return-1",
                "device_returned",
                now - timedelta(days=1),
                None,
                None,
                None,
                None,
                json.dumps({"sn": "SN0998"}),
            )
        )
        history.append(
            (
                gid0,
                "pump1",
                now - timedelta(days=2, minutes=1),
                pumps[0][2],
                pumps[0][3],
                "SN0999",
                pumps[0][5],
                new,
                "event",
            )
        )
        with conn.cursor() as cur:
            with cur.copy("""COPY pumps (gateway_id, pump, manufacturer, model, serial_number, firmware, library_version,
                             identity_at, asset_tag, bed, availability, first_seen, last_seen, channel_states)
                             FROM STDIN""") as cp:
                for row in pumps:
                    state = rng.choice(("infusing", "infusing", "idle", "paused"))
                    cp.write_row((*row, json.dumps([{"channel": "1", "state": state, "drug": None}])))
            with cur.copy("""COPY pump_identity_history (gateway_id, pump, observed_at, manufacturer, model,
                             serial_number, firmware, library_version, source) FROM STDIN""") as cp:
                for row in history:
                    cp.write_row(row)
            with cur.copy("""COPY alarms (gateway_id, pump, message_id, phase, alert_instance_id, occurred_at, channel,
                             code, priority) FROM STDIN""") as cp:
                for row in alarms:
                    cp.write_row(row)
            with cur.copy("""COPY verdicts (gateway_id, pump, channel, observed_at, drug, care_area, severity, kinds,
                             library_version) FROM STDIN""") as cp:
                for row in verdicts:
                    cp.write_row(row)
            with cur.copy("""COPY events (gateway_id, pump, message_id, kind, occurred_at, channel, channel_state, drug,
                             care_area, previous_identity) FROM STDIN""") as cp:
                for row in events:
                    cp.write_row(row)
    conn.execute("ANALYZE")
