"""``pumpgw ehr-sim``: run the simulated EHR / alert manager MLLP receiver."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from pathlib import Path

from common.pcd.conformance import conformance_findings
from simulators.ehr.modes import ModeError, parse_mode, parse_schedule
from simulators.ehr.modes import __doc__ as MODES_DOC
from simulators.ehr.receiver import EhrReceiver

HELP = """\
Run an MLLP receiver that stands in for the EHR interface engine or the alert manager.

Every message received is written to --log as one JSON line (index, time, peer, MSH-10
control_id, MSH-9 message_type, answer, checker findings, raw HL7). Many connections and
many messages per connection are served. Binds to 127.0.0.1 unless --host says otherwise.
Prints 'listening on HOST:PORT' when ready (use --port 0 for a free port). Stop with Ctrl-C.
""" + (MODES_DOC or "")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ehr-sim",
        help="run a simulated EHR/alert manager (MLLP receiver with fault modes)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=2575, help="TCP port (default 2575; 0 = any free port)")
    p.add_argument("--log", type=Path, help="append one JSON line per received message to this file")
    p.add_argument(
        "--mode", default="aa", help="how to answer, e.g. aa, ca, ae:3, ce:/ORU\\^R40/, slow:0.5 (see above)"
    )
    p.add_argument("--schedule", type=Path, help="file of 'SECONDS MODE' lines switching the mode over time")
    p.add_argument("--tls-cert", type=Path, help="serve MLLP over TLS with this certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, help="private key of --tls-cert")
    p.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="do not run the IHE PCD conformance checker on received messages (it is on by default;\n"
        "its findings go into each JSON line)",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        mode = parse_mode(args.mode)
        schedule = parse_schedule(args.schedule) if args.schedule else None
    except (ModeError, OSError) as exc:
        print(f"ehr-sim: {exc}", file=sys.stderr)
        return 2
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                ctx.load_verify_locations(args.tls_client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            print(f"ehr-sim: cannot load TLS files: {exc}", file=sys.stderr)
            return 1
    checker = None if args.no_check else conformance_findings
    receiver = EhrReceiver(
        args.host, args.port, log_path=args.log, mode=mode, schedule=schedule, ssl_context=ctx, checker=checker
    )
    return asyncio.run(_serve(receiver))


async def _serve(receiver: EhrReceiver) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await receiver.start()
    except OSError as exc:
        if exc.filename:  # the --log file, not the socket
            print(f"ehr-sim: cannot open the log {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        else:
            print(f"ehr-sim: cannot listen on {receiver.host}:{receiver.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"listening on {receiver.host}:{port} (mode {receiver.mode.spec})", flush=True)
    try:
        await stop.wait()
    finally:
        await receiver.stop()
    print(f"received {len(receiver.received)} message(s) on {receiver.connections} connection(s)", flush=True)
    return 0
