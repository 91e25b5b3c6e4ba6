"""``pumpgw simulate``: run the simulated pumps of a scenario file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from simulators.scenario import ScenarioError, load_scenario

if TYPE_CHECKING:
    from simulators.vendor_server.cli import VendorSetup
from simulators.scenario_runner import ScenarioRunner

HELP = """\
Start every simulated pump of a scenario file -- NE-1000 and Alaris-style pumps on
pseudo-terminals, B. Braun BCC-style pumps in TCP racks on 127.0.0.1 -- print each endpoint
(pty path, or host:port with pillar and slot), then run the scenario's timeline (alarms,
titrations, faults, disconnects, identity swaps ...). Stop with Ctrl-C.

Pty paths are stable symlinks in --pty-dir (a fresh temporary directory by default), so a
scripted disconnect/reconnect keeps the path the gateway config names.

--write-config OUT writes the matching gateway configuration (check it with
`pumpgw check-config OUT`, run it with `pumpgw run --config OUT`); its HL7 destination is
127.0.0.1:--ehr-port (start `pumpgw ehr-sim --port N` there). Scenario format:
docs/tester.md; examples: config/scenarios/.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="run simulated pumps from a scenario file (ptys and TCP racks, faults, timeline)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", type=Path, help="scenario file (TOML), e.g. config/scenarios/ward.toml")
    p.add_argument(
        "--vendor-server",
        metavar="HOST:PORT",
        help="also run a vendor pump server sending IHE PCD-01/10/04 to a pumpgw [[sources]] listener",
    )
    p.add_argument(
        "--vendor-script",
        type=Path,
        metavar="FILE",
        help="vendor-server script (TOML, see simulators/vendor_server/script.py); default: the 12 verdict programs once",
    )
    p.add_argument("--write-config", type=Path, metavar="OUT", help="write the matching gateway config here")
    p.add_argument(
        "--ehr-port", type=int, default=2575, help="HL7 destination port in the written config (default 2575)"
    )
    p.add_argument("--outbox", default="sim-outbox.sqlite", help="outbox path in the written config")
    p.add_argument("--pty-dir", type=Path, help="directory for the pty symlinks (default: a new temporary one)")
    p.add_argument(
        "--duration",
        type=float,
        help="stop after this many seconds; 0: run until Ctrl-C (default: the scenario's duration_s, "
        "or run until interrupted)",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    vendor: VendorSetup | None = None
    if args.vendor_server is not None:
        from simulators.vendor_server.cli import load_vendor_server

        loaded = load_vendor_server(args.vendor_server, args.vendor_script)
        if isinstance(loaded, int):
            return loaded
        vendor = loaded
    if args.scenario is None:
        if vendor is None:
            print("simulate: give --scenario and/or --vendor-server", file=sys.stderr)
            return 2
        from simulators.vendor_server.cli import run_vendor_server

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
        return run_vendor_server(vendor, args.duration)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"{exc.path}: scenario is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    own_dir = args.pty_dir is None
    pty_dir = Path(tempfile.mkdtemp(prefix="pumpgw-sim-")) if own_dir else args.pty_dir
    pty_dir.mkdir(parents=True, exist_ok=True)
    duration = args.duration if args.duration is not None else scenario.simulation.duration_s
    try:
        return asyncio.run(_serve(ScenarioRunner(scenario, pty_dir=pty_dir), args, duration, vendor))
    finally:
        if own_dir:
            shutil.rmtree(pty_dir, ignore_errors=True)


async def _serve(runner: ScenarioRunner, args: argparse.Namespace, duration: float, vendor=None) -> int:
    """``vendor``: a checked VendorSetup (simulators.vendor_server.cli) to run beside the pumps."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    vendor_task = None
    try:
        endpoints = await runner.start()
    except OSError as exc:
        print(f"simulate: cannot start the simulators: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        print(f"{len(endpoints)} simulated pump(s):", flush=True)
        for endpoint in endpoints:
            print(f"  {endpoint.describe()}", flush=True)
        if args.write_config:
            text = runner.gateway_config_toml(ehr_port=args.ehr_port, outbox_path=str(args.outbox))
            args.write_config.write_text(text, encoding="utf-8")
            print(f"gateway config written to {args.write_config}", flush=True)
        if vendor is not None:
            from simulators.vendor_server.client import VendorServer
            from simulators.vendor_server.script import run_script

            server = VendorServer(vendor.host, vendor.port, id_prefix=vendor.script.server.id_prefix)
            vendor_task = loop.create_task(run_script(server, vendor.script, stop=stop))
        print("running (Ctrl-C to stop)", flush=True)
        if duration > 0:
            try:
                async with asyncio.timeout(duration):
                    await stop.wait()
            except TimeoutError:
                pass
        else:
            await stop.wait()
    finally:
        if vendor_task is not None:
            vendor_task.cancel()
            await asyncio.gather(vendor_task, return_exceptions=True)
            await server.close()
        await runner.stop()
    print(f"stopped; {len(runner.applied)} scripted action(s) applied", flush=True)
    return 0
