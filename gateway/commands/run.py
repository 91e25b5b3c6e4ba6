"""``pumpgw run FILE`` (or ``--config FILE``): the daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from gateway.commands.check_config import print_config_error, print_gate_errors
from gateway.commands.common import add_config_argument, required_config_path
from gateway.config import load_config_report
from gateway.errors import ConfigError, PumpgwError
from gateway.log import configure_logging, get_logger

HELP = """\
Run the gateway daemon in the foreground (systemd starts it this way; see
systemd/pumpgw.service). It polls every configured pump read-only, queues HL7 messages in
the outbox file and delivers them to each destination, publishes MQTT when enabled, and
tells systemd when it is ready and alive. Stop it with SIGTERM or Ctrl-C: it finishes the
message in hand, commits the outbox and closes every link, then exits 0.

Before starting it runs the same checks as `pumpgw check-config` (file and host). Only one
daemon may use an outbox: a second one exits 1 naming the first one's PID.

Exit codes: 0 stopped cleanly; 1 the configuration or a host check failed, the outbox cannot
be opened or is in use by another daemon; 2 usage error.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the gateway daemon", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_argument(p)
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    # Until the supervisor takes SIGHUP over, a `systemctl reload` during start-up must not end
    # the daemon (SIGHUP's default action).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from gateway.config.preflight import gate

    path = required_config_path(args)
    try:
        report = load_config_report(path)
    except ConfigError as exc:
        return print_config_error(exc)
    errors, warnings = gate(report)
    if errors:
        return print_gate_errors(str(path), errors)
    config = report.config
    configure_logging(level=config.logging.level, fmt=config.logging.format, wire_trace=config.logging.wire_trace)
    from gateway.daemon import build_daemon  # imported late: `--help` stays fast

    log = get_logger("pumpgw.run")
    log.info(
        "configuration loaded",
        file=str(path),
        pumps=len(config.pumps),
        destinations=[d.name for d in config.destinations],
    )
    for warning in warnings:
        log.warning("configuration warning", detail=str(warning))

    try:
        daemon = build_daemon(config, config_path=Path(path))
    except PumpgwError as exc:
        log.error("cannot start", error=str(exc), error_type=type(exc).__name__)
        return 1
    except OSError as exc:  # e.g. a file that vanished since the checks
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("cannot start", error=f"{where}{exc.strerror or exc}", error_type=type(exc).__name__)
        return 1
    asyncio.run(_run(daemon))
    return 0


async def _run(daemon) -> None:
    await daemon.run()
    if daemon.supervisor.stragglers:
        # The outbox is closed and committed; a task that ignores cancellation would make the
        # interpreter's own shutdown wait for ever, so leave now (the log line says why).
        get_logger("pumpgw.run").error("exiting with services still running", services=daemon.supervisor.stragglers)
        logging.shutdown()
        os._exit(0)
