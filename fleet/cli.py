"""``pumpgw fleet ...``: run the collector, migrate the database, print reports, simulate gateways.

Registered by gateway/cli.py like every command group, but everything heavy (psycopg, paho,
starlette) is imported inside the handlers, so ``pumpgw --help`` works without the ``fleet``
extra installed. Errors are one line naming what and where, exit code 1; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

DEFAULT_CONFIG = os.environ.get("PUMPGW_FLEET_CONFIG", "/etc/pumpgw/fleet.toml")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fleet",
        help="the region's central view: collect every gateway into PostgreSQL, reports",
        description="Central fleet service (docs/fleet.md).",
    )
    fsub = p.add_subparsers(dest="fleet_command", metavar="FLEET_COMMAND")
    # issue 22: `pumpgw fleet --demo` (no sub-command) and `pumpgw fleet passwd`
    p.add_argument(
        "--demo",
        action="store_true",
        help="simulated region in the local PostgreSQL + Mosquitto, shown in the web UI on 127.0.0.1 (docs/fleet.md)",
    )
    from fleet.web import demo as _demo
    from fleet.web import passwd as _passwd

    _demo.add_arguments(p)
    p.set_defaults(handler=_demo_or_usage, fleet_parser=p)
    pw = fsub.add_parser(
        "passwd",
        help="hash a web UI password (argon2id) for [[web.users]]",
        description="Hash a web UI password with argon2id and print the [[web.users]] entry to paste into fleet.toml.",
    )
    _passwd.add_arguments(pw)
    pw.set_defaults(handler=_passwd_cmd)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", default=DEFAULT_CONFIG, help=f"fleet.toml (default {DEFAULT_CONFIG})")
        q.add_argument("--dsn", help="PostgreSQL connection string (overrides [database] dsn)")

    run = fsub.add_parser(
        "run",
        help="collect the gateways' MQTT tree into PostgreSQL (and serve the API)",
        description="Collect every gateway's MQTT tree into PostgreSQL and serve the fleet API; "
        "runs until stopped (SIGTERM/Ctrl-C).",
    )
    common(run)
    run.add_argument("--no-http", action="store_true", help="collector only, no HTTP API")
    run.set_defaults(handler=_run)

    mig = fsub.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        description="Create the fleet database schema, or upgrade it to this version.",
    )
    common(mig)
    mig.set_defaults(handler=_migrate)

    rep = fsub.add_parser(
        "report",
        help="print a report (text table, --json or --csv)",
        description="Print one fleet report as a text table, JSON or CSV "
        "(`pumpgw fleet report list` lists the reports).",
    )
    common(rep)
    rep.add_argument("name", help="report name; `pumpgw fleet report list` lists them")
    fmt = rep.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    rep.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="report parameter, e.g. --param days=14"
    )
    rep.set_defaults(handler=_report)

    sim = fsub.add_parser(
        "simulate",
        help="publish a simulated region (N gateways x M pumps) to a broker",
        description="Publish a simulated region (N gateways x M pumps) to an MQTT broker, "
        "as the gateways would, for trying the fleet service.",
    )
    sim.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    sim.add_argument("--gateways", type=int, default=5, help="simulated gateways (default 5)")
    sim.add_argument("--pumps", type=int, default=10, help="pumps per gateway (default 10)")
    sim.add_argument("--rounds", type=int, default=20, help="simulation steps (each: events, alarms, state)")
    sim.add_argument("--prefix", default="pumpgw/v1", help="topic prefix (default pumpgw/v1)")
    sim.add_argument("--seed", type=int, default=1, help="random seed, for a reproducible region")
    sim.set_defaults(handler=_simulate)


def _demo_or_usage(args: argparse.Namespace) -> int:
    if not getattr(args, "demo", False):
        args.fleet_parser.print_usage(sys.stderr)
        return _fail("a FLEET_COMMAND or --demo is required")
    try:
        import argon2  # noqa: F401
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        return _fail(f"the fleet extra is not installed ({exc.name} missing): pip install -e '.[fleet]'")
    from fleet.web.demo import main as demo_main

    return demo_main(args)


def _passwd_cmd(args: argparse.Namespace) -> int:
    from fleet.web.passwd import main as passwd_main

    return passwd_main(args)


def _fail(message: str) -> int:
    print(f"pumpgw fleet: {message}", file=sys.stderr)
    return 1


def _settings(args: argparse.Namespace) -> Any:
    from fleet.config import FleetSettings, load_settings

    if os.path.exists(args.config) or args.config != DEFAULT_CONFIG or not args.dsn:
        settings = load_settings(args.config)
    else:
        settings = FleetSettings()
    if args.dsn:
        settings = settings.model_copy(update={"database": settings.database.model_copy(update={"dsn": args.dsn})})
    return settings


def _guarded(fn: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        from fleet import FleetError

        try:
            import psycopg
        except ImportError:
            return _fail("the fleet extra is not installed: pip install 'pumpgw[fleet]'")
        try:
            return int(fn(args) or 0)
        except FleetError as exc:
            return _fail(str(exc))
        except psycopg.Error as exc:
            return _fail(f"PostgreSQL: {str(exc).strip().splitlines()[0][:300]}")

    return wrapper


@_guarded
def _migrate(args: argparse.Namespace) -> int:
    from fleet.db.connect import connect
    from fleet.db.migrations import migrate

    settings = _settings(args)
    with connect(settings.database.dsn) as conn:
        applied = migrate(conn)
    print(f"schema migrations applied: {applied}" if applied else "schema is up to date")
    return 0


@_guarded
def _report(args: argparse.Namespace) -> int:
    from fleet.db.connect import connect
    from fleet.http.app import BadParameter, parse_params
    from fleet.reports import REPORTS
    from fleet.reports.export import to_csv, to_dicts, to_json

    if args.name == "list":
        for each in REPORTS.values():
            print(f"{each.name:18} {each.title}  params: {', '.join(sorted(each.params)) or '-'}")
        return 0
    spec = REPORTS.get(args.name)
    if spec is None:
        return _fail(f"no report named {args.name!r}; reports: {', '.join(REPORTS)}")
    query = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            return _fail(f"--param {item!r} is not KEY=VALUE")
        query[key] = value
    try:
        params = parse_params(spec, query)
    except BadParameter as exc:
        return _fail(str(exc))
    settings = _settings(args)
    with connect(settings.database.dsn, autocommit=True) as conn:
        rows = spec.function(conn, **params)
    if args.json:
        print(to_json(rows))
    elif args.csv:
        sys.stdout.write(to_csv(rows, spec.row))
    else:
        _table(to_dicts(rows))
    return 0


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("(no rows)")
        return
    names = list(rows[0])
    cells = [[("" if r[n] is None else str(r[n]))[:40] for n in names] for r in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


@_guarded
def _run(args: argparse.Namespace) -> int:
    from fleet.service import run_service

    return run_service(_settings(args), http=not args.no_http)


def _simulate(args: argparse.Namespace) -> int:
    from fleet.sim.run import simulate_cli

    return simulate_cli(args)
