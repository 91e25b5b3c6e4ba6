"""``pumpgw outbox``: inspect and act on the durable outbox (operators, integration engineers).

Works on the file while the daemon runs (SQLite WAL: readers never block it). Actions
(requeue, purge) commit with synchronous=FULL; a running sender picks requeued rows up at
its next idle check (within seconds).
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from pathlib import Path

from gateway.commands.common import add_database_options, database_option
from gateway.errors import ConfigError
from gateway.outbox import queries, schema
from gateway.outbox.errors import MessageNotFound, OutboxError
from gateway.outbox.model import STATES, OutboxMessage

HELP = """\
Inspect and act on the durable outbox (one lane per HL7 destination name).

  stats                          per lane: pending, oldest pending age, in flight, delivered,
                                 quarantined, expired, thinned (byte budget), bytes
  list [--lane L] [--state S]    messages, oldest first (default: not delivered)
  show ID                        one message with its reason, ACK text and raw HL7 (PHI!)
  requeue ID | --quarantined     put quarantined/expired message(s) back to pending, fresh TTL
  purge --expired --older-than D delete expired messages recorded more than D ago (30s, 15m, 12h, 7d)
  check                          integrity check of the file (PRAGMA quick_check: reads every
                                 page; safe beside the running daemon)

Find the file with --db PATH or --config FILE (its [outbox] path). Add --json for
machine-readable output.
"""


ACTION_HELP = {
    "stats": "Per lane: pending, age of the oldest pending message, in flight, delivered, quarantined, "
    "expired, thinned by the byte budget, bytes on disk.",
    "list": "Messages oldest first, without their HL7 content (default: every state but delivered).",
    "show": "One message in full: state, reason, the receiver's ACK text and the raw HL7. "
    "CONTAINS PATIENT DATA: do not paste it into tickets.",
    "requeue": "Put a quarantined or expired message (or --quarantined: all quarantined ones) back to "
    "pending with a fresh TTL; the running daemon sends it within seconds.",
    "purge": "Delete expired messages recorded more than --older-than ago (30s, 15m, 12h, 7d).",
    "check": "Integrity check of the whole file (SQLite quick_check), read-only: safe while the daemon "
    "runs, but it reads every page, so it takes minutes on a large outbox. Exit 0 when intact, "
    "1 naming the damage.",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "outbox",
        help="inspect the durable outbox; requeue or purge messages",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_options(p, suppress=False, db_help="outbox SQLite file")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        a = actions.add_parser(
            name,
            help=help_,
            description=ACTION_HELP[name] + " Give the outbox with "
            "--db PATH or --config FILE (before or after the action).",
        )
        add_database_options(a, suppress=True, db_help="outbox SQLite file")
        a.add_argument("--json", action="store_true", help="print JSON")
        return a

    action("stats", "per-lane figures")
    action("check", "integrity check (reads the whole file)")
    ls = action("list", "list messages")
    ls.add_argument("--lane", help="only this lane (destination name, or NAME.alarms)")
    ls.add_argument("--state", choices=STATES, help="only messages in this state")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    show = action("show", "one message in full")
    show.add_argument("id", type=int, help="message id (from list)")
    rq = action("requeue", "send quarantined/expired message(s) again")
    target = rq.add_mutually_exclusive_group(required=True)
    target.add_argument("id", type=int, nargs="?", help="message id (from list)")
    target.add_argument("--quarantined", action="store_true", help="every quarantined message")
    rq.add_argument("--reason", default="", help="why (recorded in the audit trail with your login name)")
    pg = action("purge", "delete expired messages")
    pg.add_argument("--expired", action="store_true", required=True, help="(required) purge expired messages")
    pg.add_argument(
        "--older-than",
        required=True,
        type=parse_duration,
        metavar="DURATION",
        help="age of the expiry, e.g. 30s, 15m, 12h, 7d",
    )
    pg.add_argument("--reason", default="", help="why (recorded in the audit trail with your login name)")
    p.set_defaults(handler=_handle)


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration like 30s, 15m, 12h or 7d, got {text!r}")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]


def _handle(args: argparse.Namespace) -> int:
    database_option(args)  # exactly one of --db / --config (else a usage error)
    try:
        path = args.db if args.db is not None else _db_from_config(args.config)
        # Read-only actions open the file read-only: an operator in the service's group may
        # look without being able to write (and without being told the file is corrupt).
        conn = schema.connect(path, create=False, readonly=args.action in _READ_ONLY)
    except (OutboxError, ConfigError, FileNotFoundError) as exc:
        print(f"pumpgw outbox: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:  # e.g. a folder given as --db
        print(f"pumpgw outbox: {path}: cannot open as an outbox: {exc}", file=sys.stderr)
        return 1
    try:
        return _ACTIONS[args.action](conn, args)
    except MessageNotFound as exc:
        print(f"pumpgw outbox: {exc}", file=sys.stderr)
        return 1
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc).lower() or "read-only" in str(exc).lower():
            print(
                f"pumpgw outbox: {path}: cannot write ({exc}); the file is not damaged -- run this as the "
                "service user, e.g. `sudo -u pumpgw pumpgw outbox ...`",
                file=sys.stderr,
            )
        else:
            print(f"pumpgw outbox: {path}: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"pumpgw outbox: {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()


def _db_from_config(config: Path) -> Path:
    from gateway.config import load_config

    return Path(load_config(config).outbox.path)


def _stats(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    stats = queries.lane_stats(conn)
    if args.json:
        print(json.dumps({lane: s.as_dict() for lane, s in sorted(stats.items())}, indent=2))
        return 0
    cols = ("pending", "oldest", "in_flight", "delivered", "quarantined", "expired", "thinned", "bytes")
    print(f"{'lane':<20}" + "".join(f"{c:>12}" for c in cols))
    for lane, s in sorted(stats.items()):
        oldest = "-" if s.oldest_pending_age_s is None else _age(s.oldest_pending_age_s)
        vals = (s.pending, oldest, s.in_flight, s.delivered, s.quarantined, s.expired, s.thinned, s.bytes)
        print(f"{lane:<20}" + "".join(f"{v!s:>12}" for v in vals))
    if not stats:
        print("(empty outbox)")
    return 0


def _list(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    if args.state is None:
        msgs = [m for m in queries.list_messages(conn, lane=args.lane, limit=10**9) if m.state != "delivered"]
        msgs = msgs[: args.limit]
    else:
        msgs = queries.list_messages(conn, lane=args.lane, state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps([_summary(m) for m in msgs], indent=2))
        return 0
    for m in msgs:
        print(
            f"{m.id:>8}  {m.lane:<16} {m.kind:<6} {m.state:<11} {m.control_id:<24} "
            f"age {_age(time.time() - m.created_at):>7}  tries {m.attempts:<3} {m.reason}"
        )
    return 0


def _show(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    m = queries.get_message(conn, args.id)
    data = {**_summary(m), "ack_text": m.ack_text, "payload": m.payload.decode("utf-8", errors="replace")}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            if key != "payload":
                print(f"{key:>12}: {value}")
        print("     payload: (contains patient data)")
        print(data["payload"].replace("\r", "\n"))
    return 0


def _requeue(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if args.quarantined:
            ids = conn.execute("SELECT id, control_id FROM messages WHERE state='quarantined' ORDER BY id").fetchall()
        else:
            ids = conn.execute(
                "SELECT id, control_id FROM messages WHERE id=? AND state IN ('quarantined','expired')", (args.id,)
            ).fetchall()
        n = queries.requeue(conn, msg_id=args.id, all_quarantined=args.quarantined)
        if n:
            _audit(conn, "operator.outbox_requeue", ids, args)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return _report(args, "requeued", n, 0 if n or args.quarantined else 1)


def _purge(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        cutoff = time.time() - args.older_than
        ids = conn.execute(
            "SELECT id, control_id FROM messages WHERE state='expired' AND state_at <= ? ORDER BY id", (cutoff,)
        ).fetchall()
        n = queries.purge_expired(conn, older_than_s=args.older_than)
        if n:
            _audit(conn, "operator.outbox_purge", ids, args, older_than_s=args.older_than)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return _report(args, "purged", n, 0)


def _audit(
    conn: sqlite3.Connection, kind: str, ids: list[tuple[int, str]], args: argparse.Namespace, **extra: object
) -> None:
    """The operator action's audit row, in the same transaction as the action itself."""
    from gateway.audit import AuditTrail
    from gateway.audit.operator import login_name

    detail = {
        "message_ids": [i for i, _ in ids],
        "control_ids": [c for _, c in ids],
        "count": len(ids),
        "reason": args.reason,
        **extra,
    }
    AuditTrail(conn, Path(args.db or args.config), writable=True).append_in(kind, "outbox", detail, actor=login_name())


def _report(args: argparse.Namespace, verb: str, n: int, rc: int) -> int:
    if args.json:
        print(json.dumps({verb: n}))
    else:
        print(
            f"{verb} {n} message(s)"
            + ("" if n or not getattr(args, "id", None) else f" (message {args.id} is not quarantined or expired)")
        )
    return rc


def _summary(m: OutboxMessage) -> dict:
    return {
        "id": m.id,
        "lane": m.lane,
        "kind": m.kind,
        "priority": m.priority,
        "state": m.state,
        "control_id": m.control_id,
        "created_at": m.created_at,
        "expires_at": m.expires_at,
        "attempts": m.attempts,
        "reason": m.reason,
        "size": len(m.payload),
    }


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _check(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    started = time.monotonic()
    problems = schema.quick_check(conn)
    took = time.monotonic() - started
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems, "seconds": round(took, 1)}))
    elif problems:
        print(f"outbox integrity check FAILED ({len(problems)} problem(s) shown):")
        for problem in problems:
            print(f"  {problem}")
    else:
        print(f"outbox integrity check ok ({took:.1f} s)")
    return 1 if problems else 0


_READ_ONLY = frozenset({"stats", "list", "show", "check"})
_ACTIONS = {"check": _check, "stats": _stats, "list": _list, "show": _show, "requeue": _requeue, "purge": _purge}
