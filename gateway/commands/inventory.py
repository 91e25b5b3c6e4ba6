"""``pumpgw inventory``: every configured slot's pump -- identity, firmware, library, asset tag.

Read-only on the gateway database (works while the daemon runs). ``--csv`` writes the columns
a CMMS import takes (docs/biomedical-engineer.md, "Inventory").
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from gateway.errors import ConfigError

CSV_COLUMNS = (
    "asset_tag",
    "serial_number",
    "model",
    "manufacturer",
    "firmware",
    "library_version",
    "ward",
    "bed",
    "last_seen",
    "pump_id",
    "first_seen",
    "udi",
)
_SELECT = (
    "SELECT pump_id, manufacturer, model, serial_number, firmware, drug_library_version, udi, asset_tag, "
    "first_seen, last_seen, unreadable_since FROM pump_identity ORDER BY pump_id"
)

HELP = """\
The pumps this gateway has identified, one row per configured slot: asset tag, serial
number, model, manufacturer, firmware, the pump's drug-library version, ward, bed, first and
last seen. Opens the database read-only; safe while the daemon runs.

  pumpgw inventory --config /etc/pumpgw/gateway.toml            table
  pumpgw inventory --config /etc/pumpgw/gateway.toml --csv      CSV for a CMMS import
  pumpgw inventory --db /var/lib/pumpgw/outbox.sqlite --json    (no ward/bed without --config)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inventory",
        help="pump identities, firmware, library versions, asset tags",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="gateway configuration (database path, ward, beds)")
    where.add_argument("--db", type=Path, help="gateway database (the outbox file)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV (CMMS import columns)")
    p.set_defaults(handler=_handle)


def inventory_rows(conn, config) -> list[dict[str, str]]:
    ward = config.gateway.ward if config is not None else ""
    beds = {p.id: p.location for p in config.pumps} if config is not None else {}
    configured = [p.id for p in config.pumps] if config is not None else []
    rows = {}
    for r in conn.execute(_SELECT):
        rows[r[0]] = {
            "pump_id": r[0],
            "manufacturer": r[1] or "",
            "model": r[2] or "",
            "serial_number": r[3] or "",
            "firmware": r[4] or "",
            "library_version": r[5] or "",
            "udi": r[6] or "",
            "asset_tag": r[7] or "",
            "first_seen": r[8] or "",
            "last_seen": r[9] or "",
            "identity_unreadable_since": r[10] or "",
            "ward": ward,
            "bed": beds.get(r[0], ""),
        }
    for pump_id in configured:  # configured but never identified: listed, empty
        if pump_id not in rows:
            rows[pump_id] = {k: "" for k in (*CSV_COLUMNS, "identity_unreadable_since")} | {
                "pump_id": pump_id,
                "ward": ward,
                "bed": beds.get(pump_id, ""),
            }
    if config is not None:
        tags = {p.id: p.asset_tag for p in config.pumps}
        for pump_id, row in rows.items():
            if not row["asset_tag"] and tags.get(pump_id):
                row["asset_tag"] = tags[pump_id] or ""
    order = configured + sorted(set(rows) - set(configured))
    return [rows[p] for p in order]


def _handle(args: argparse.Namespace) -> int:
    from gateway.commands.readonly import DatabaseUnavailable, database_path, open_readonly

    try:
        path, config = database_path(args.db, args.config)
        conn = open_readonly(path, "pump_identity")
    except (ConfigError, DatabaseUnavailable) as exc:
        print(f"pumpgw inventory: {exc}", file=sys.stderr)
        return 1
    try:
        rows = inventory_rows(conn, config)
    finally:
        conn.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        cols = (
            "pump_id",
            "bed",
            "asset_tag",
            "manufacturer",
            "model",
            "serial_number",
            "firmware",
            "library_version",
            "last_seen",
        )
        widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in cols}
        print("  ".join(c.ljust(widths[c]) for c in cols))
        for r in rows:
            flag = (
                "  (identity unreadable since " + r["identity_unreadable_since"] + ")"
                if r["identity_unreadable_since"]
                else ""
            )
            print("  ".join(r[c].ljust(widths[c]) for c in cols) + flag)
        if not rows:
            print("(no pump identified yet)")
    return 0
