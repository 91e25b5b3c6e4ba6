"""``pumpgw simulate --vendor-server HOST:PORT [--vendor-script FILE]``."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from simulators.vendor_server.client import VendorServer
from simulators.vendor_server.script import Script, ScriptError, load_script, run_script


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--vendor-server {text!r}: expected HOST:PORT, e.g. 127.0.0.1:2576")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class VendorSetup:
    """A vendor server to simulate: where to send, and what (read and checked once)."""

    host: str
    port: int
    script: Script


def load_vendor_server(address: str, script_path: Path | None) -> VendorSetup | int:
    """The parsed address and script, or the exit code after saying what is wrong."""
    try:
        host, port = parse_address(address)
        script = load_script(script_path)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    except ScriptError as exc:
        print(f"{exc.path}: vendor-server script is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return VendorSetup(host, port, script)


def run_vendor_server(setup: VendorSetup, duration: float | None) -> int:
    return asyncio.run(_run(setup.host, setup.port, setup.script, duration))


async def _run(host: str, port: int, script, duration: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = VendorServer(host, port, id_prefix=script.server.id_prefix)
    task = loop.create_task(run_script(server, script, stop=stop))
    waiter = loop.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, timeout=duration or None, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            exc = task.exception()
            if exc is not None:
                print(f"simulate: vendor server stopped: {exc}", file=sys.stderr)
                return 1
    finally:
        for t in (task, waiter):
            t.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
        await server.close()
    codes = [c for a in server.answers for c in a.codes]
    print(f"vendor server: {len(server.answers)} message(s) acknowledged ({', '.join(sorted(set(codes)))})", flush=True)
    return 0
