"""``pumpgw check-config FILE``: validate a configuration and the host it will run on."""

from __future__ import annotations

import argparse
import sys

from gateway.commands.common import add_config_argument, required_config_path
from gateway.config import load_config_report
from gateway.config.problems import ConfigProblem
from gateway.config.summary import summarise
from gateway.errors import ConfigError

HELP = """\
Validate a gateway configuration file and the host it will run on, without starting
anything. systemd runs it as ExecStartPre, so it refuses exactly what `pumpgw run` refuses.

It checks the file (every key, with FILE:LINE: KEY: expected / got), then this host: the
drug library against its SHA-256 pin and schema; every TLS certificate, key and CA bundle
and every secret file loads; the outbox folder exists and is writable; at least one pump
and one destination (or gateway.incomplete_reason says why). An absent serial device is a
warning only: USB adapters come and go and the poller keeps retrying.

Prints a summary -- gateway identity; pumps grouped by how they are wired with protocol,
serial settings, location, care area and poll interval; every HL7 destination with the
message kinds routed to it; MQTT, outbox and drug library -- then any warnings.

--file-only skips the host checks (to check a file on a workstation before deploying it).

Exit codes: 0 valid (warnings may be listed); 1 invalid file or a failed host check, each
problem listed on stderr; 2 usage error. See docs/biomedical-engineer.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-config",
        help="validate a configuration file and this host; print a summary",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(p)
    p.add_argument(
        "--file-only",
        action="store_true",
        help="check the file only, not this host (library, TLS files, outbox folder, devices)",
    )
    p.set_defaults(handler=_handle)


def print_config_error(exc: ConfigError) -> int:
    """Every problem of an invalid configuration on stderr; the exit code 1 for the caller."""
    count = len(exc.problems)
    print(f"{exc.path}: configuration is invalid, {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def print_gate_errors(source: str, errors: list[ConfigProblem]) -> int:
    """Host-check failures on stderr (same shape as file errors); exit code 1."""
    count = len(errors)
    print(f"{source}: not ready to run on this host, {count} problem{'s' if count != 1 else ''}:", file=sys.stderr)
    for problem in errors:
        print(f"  {problem}", file=sys.stderr)
    return 1


def _handle(args: argparse.Namespace) -> int:
    from gateway.config.preflight import gate

    path = required_config_path(args)
    try:
        report = load_config_report(path)
    except ConfigError as exc:
        return print_config_error(exc)
    errors, warnings = gate(report, host_checks=not args.file_only)
    if errors:
        return print_gate_errors(str(path), errors)
    print(summarise(report.config, source=str(path), warnings=warnings))
    print(
        "host checks   skipped (--file-only)"
        if args.file_only
        else "host checks   passed: drug library, TLS and secret files, outbox folder, serial devices"
    )
    return 0
