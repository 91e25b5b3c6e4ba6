"""The ``pumpgw`` command.

Each sub-command lives in the module that owns its subject and exposes
``register(subparsers)``; this file only assembles them, so adding a command never means
editing another team's module. Exit codes: 0 success, 1 the subject is invalid (bad
config, failed check), 2 usage error (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gateway import __version__

# (module, attribute) of every command group's ``register`` function, in --help order.
COMMAND_MODULES: tuple[str, ...] = (
    "gateway.commands.run",
    "gateway.commands.check_config",
    "gateway.commands.demo",
    "gateway.commands.schema",
    "gateway.commands.library",
    "gateway.commands.outbox",
    "gateway.commands.inventory",
    "gateway.commands.audit",
    "simulators.ehr.cli",
    "simulators.cli",
    "gateway.commands.hl7",
    "fleet.cli",  # the central fleet service (own package; heavy imports only inside its handlers)
)

DESCRIPTION = """\
pumpgw -- edge gateway for networked infusion pumps.

Polls the ward's pumps read-only, checks their programs against the central drug
library, documents infusions and alarms in the patient record as IHE PCD HL7 messages
over MLLP (through a durable on-disk outbox), and publishes live state over MQTT.

Start with `pumpgw demo` to see it work with simulated pumps, or
`pumpgw check-config /etc/pumpgw/gateway.toml` to validate a ward's configuration.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pumpgw", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"pumpgw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pumpgw ... | head`
        sys.stderr.close()
        return 0
