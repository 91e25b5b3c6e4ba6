"""``pumpgw check-config FILE``: validate a configuration and summarise it."""

from __future__ import annotations

import argparse
import sys

from gateway.config import load_config
from gateway.config.summary import summarise
from gateway.errors import ConfigError

HELP = """\
Validate a gateway configuration file without starting anything.

Prints a summary (gateway identity, every pump with its protocol, link and poll
interval, every HL7 destination with the message kinds routed to it, MQTT, outbox and
drug library) and exits 0; or lists every problem with file, line, key and what was
expected, and exits 1. Run it after every edit, before `systemctl restart pumpgw`.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-config", help="validate a configuration file and print a summary",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="gateway configuration (TOML), e.g. /etc/pumpgw/gateway.toml")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"{exc.path}: configuration is invalid ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(summarise(config, source=args.file))
    return 0
