"""``pumpgw audit``: read and verify the gateway's append-only audit trail (read-only)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from gateway.commands.common import add_database_options
from gateway.errors import ConfigError

HELP = """\
The gateway's audit trail: identity changes (swaps, firmware, library), configuration
changes, asset-tag registrations, operator actions on the outbox, drug-library changes.
Rows are append-only and hash-chained; `verify` walks the chain and exits 1 if any row was
edited or deleted. Opens the database read-only; safe while the daemon runs.

  list [--since WHEN] [--pump ID] [--kind KIND] [--json]
       WHEN: ISO date/time (2026-03-01, 2026-03-01T08:00+01:00) or an age (12h, 7d)
       KIND: a kind or its prefix: identity, identity.firmware_changed, config, operator
  verify [--json]
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="list and verify the audit trail",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_options(p, suppress=False)  # before or after the action (gateway.commands.common)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list",
        help="audit rows, oldest first",
        description=(
            "List the audit trail's rows, oldest first, optionally since a time, about one pump or of one "
            "kind. Give the database with --config FILE or --db PATH (before or after the action)."
        ),
    )
    add_database_options(ls, suppress=True)
    ls.add_argument("--since", type=parse_since, help="ISO date/time or an age like 12h, 7d")
    ls.add_argument("--pump", help="rows about this pump id")
    ls.add_argument("--kind", help="a kind or its prefix (identity, config, operator ...)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    vf = actions.add_parser(
        "verify",
        help="check the hash chain; exit 1 on any break",
        description=(
            "Check the audit trail's hash chain row by row: exit 0 when intact, 1 naming the first row "
            "that breaks it. Give the database with --config FILE or --db PATH (before or after the action)."
        ),
    )
    add_database_options(vf, suppress=True)
    vf.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_handle)


def parse_since(text: str) -> str:
    from gateway.commands.outbox import parse_duration

    try:
        return (datetime.now(UTC) - timedelta(seconds=parse_duration(text))).isoformat(timespec="microseconds")
    except argparse.ArgumentTypeError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date/time or an age like 12h or 7d, got {text!r}") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time of the operator's host
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _handle(args: argparse.Namespace) -> int:
    from gateway.audit import AuditError, AuditTrail
    from gateway.commands.common import database_option
    from gateway.commands.readonly import database_path

    try:
        path, _ = database_path(*database_option(args))
        trail = AuditTrail.open_readonly(path)
    except (ConfigError, AuditError) as exc:
        print(f"pumpgw audit: {exc}", file=sys.stderr)
        return 1
    try:
        if args.action == "list":
            rows = trail.rows(since=args.since, subject=args.pump, kind=args.kind)
            if args.json:
                print(json.dumps([r.to_dict() for r in rows], indent=2, ensure_ascii=False))
            else:
                for r in rows:
                    detail = " ".join(f"{k}={v}" for k, v in r.detail_dict.items() if v not in ("", None, []))
                    print(f"{r.seq:>6}  {r.at[:19]}Z  {r.kind:<34} {r.subject:<12} {r.actor:<10} {detail}")
                if not rows:
                    print("(no audit rows match)")
            return 0
        findings = trail.verify()
        count = len(trail.rows())
        if args.json:
            print(
                json.dumps(
                    {
                        "rows": count,
                        "intact": not findings,
                        "findings": [{"seq": f.seq, "problem": f.problem} for f in findings],
                    },
                    indent=2,
                )
            )
        elif findings:
            print(f"audit trail {path}: NOT intact ({len(findings)} break(s) in {count} rows)")
            for f in findings:
                print(f"  {f}")
        else:
            print(f"audit trail {path}: intact ({count} rows)")
        return 1 if findings else 0
    finally:
        trail.close()
