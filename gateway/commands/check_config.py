"""``pumpgw check-config FILE``: validate a configuration and summarise it."""

from __future__ import annotations

import argparse
import sys

from gateway.config import load_config_report
from gateway.config.summary import summarise
from gateway.errors import ConfigError

HELP = """\
Validate a gateway configuration file without starting anything.

Prints a summary -- gateway identity; pumps grouped by how they are wired (serial device
server and port, local serial line, rack pillar and slot) with protocol, serial settings,
location, care area and poll interval; every HL7 destination with the message kinds routed
to it; MQTT, outbox and drug library -- then any warnings, and exits 0.

On errors, lists every problem as FILE:LINE: KEY: what was expected and what was found,
and exits 1. Run it after every edit, before `systemctl restart pumpgw`.
See docs/biomedical-engineer.md for what each message means.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-config", help="validate a configuration file and print a summary",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="gateway configuration (TOML), e.g. /etc/pumpgw/gateway.toml")
    p.set_defaults(handler=_handle)


def print_config_error(exc: ConfigError) -> int:
    """Every problem of an invalid configuration on stderr; the exit code 1 for the caller."""
    count = len(exc.problems)
    print(f"{exc.path}: configuration is invalid, {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def _handle(args: argparse.Namespace) -> int:
    try:
        report = load_config_report(args.file)
    except ConfigError as exc:
        return print_config_error(exc)
    print(summarise(report.config, source=args.file, warnings=report.warnings))
    return 0
