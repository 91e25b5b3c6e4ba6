"""Inbound vendor-server feed throughput (issue 13, item 7).

Measures in the same run, on loopback, with the same stop-and-wait MLLP client (what a vendor
server does: the next message after the ACK of the previous one), ``--connections`` of them:

* **source**: a real in-process gateway (gateway.daemon.build_daemon) with one ``[[sources]]``
  listener: framing -> tolerant parse -> conformance check -> mapping -> drug-library verdicts
  -> events -> HL7 rendering -> one outbox commit (SQLite, synchronous=FULL) per message ->
  ACK; an EHR receiver takes the outgoing messages meanwhile;
* **echo**: a bare asyncio MLLP server that answers every frame with a fixed ACK at once;

and prints messages/s of each and their ratio (goal >= 0.3). Then it opens ``--idle``
connections to the listener and reports the memory they hold: Python heap (tracemalloc) and
process RSS, per connection. Figures are from this machine and this run only.

Run: .venv/bin/python bench/source_bench.py [--messages 2000] [--connections 4] [--idle 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.mllp.framing import MllpDecoder, frame
from common.resources import config_dir
from gateway.config.load import load_config_text
from gateway.daemon import build_daemon
from gateway.log import configure_logging
from simulators.ehr import EhrReceiver
from simulators.vendor_server import messages

ACK = b"MSH|^~\\&|ECHO|X|||20240101000000+0000||ACK^R01^ACK|1|P|2.6\rMSA|CA|1\r"


async def client(port: int, payloads: list[bytes]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = MllpDecoder()
    done = 0
    for payload in payloads:
        writer.write(frame(payload))
        await writer.drain()
        while True:
            items = decoder.feed(await reader.read(65536))
            if any(isinstance(i, bytes) for i in items):
                break
        done += 1
    writer.close()
    return done


def workload(n: int, connections: int) -> list[list[bytes]]:
    programs = list(messages.VERDICT_PROGRAMS.values())
    return [
        [messages.pcd01(programs[(c + i) % len(programs)], f"B{c}-{i:07d}") for i in range(n // connections)]
        for c in range(connections)
    ]


async def run_clients(port: int, work: list[list[bytes]]) -> float:
    t0 = time.perf_counter()
    counts = await asyncio.gather(*(client(port, w) for w in work))
    return sum(counts) / (time.perf_counter() - t0)


async def echo_rate(work) -> float:
    async def serve(reader, writer):
        decoder = MllpDecoder()
        while data := await reader.read(65536):
            for item in decoder.feed(data):
                if isinstance(item, bytes):
                    writer.write(frame(ACK))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await run_clients(port, work)
    finally:
        server.close()
        await server.wait_closed()


def gateway_config(state: Path, ehr_port: int) -> str:
    devices = "".join(
        f'\n[[sources.devices]]\nid = "vs-{n:02d}"\ndevice = "{p.device}"\ncare_area = "ICU"\n'
        for n, p in enumerate(messages.VERDICT_PROGRAMS.values(), 1)
    )
    return f"""
[gateway]
site = "bench"
ward = "w"
gateway_id = "gw"
eui64 = "001BC50C0000AA01"
[hl7]
pcd01_interval_s = 1
[outbox]
path = "{state / "outbox.sqlite"}"
[library]
path = "{config_dir() / "drug-library.example.json"}"
[logging]
level = "error"
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = {ehr_port}
messages = ["pcd01", "pcd10", "pcd04"]
[[sources]]
name = "bench"
port = 0
max_connections = 1000
{devices}
"""


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4


async def main(args) -> dict:
    configure_logging(level="error", fmt="json")
    work = workload(args.messages, args.connections)
    echo = await echo_rate(work)
    with tempfile.TemporaryDirectory(dir=args.state_dir) as tmp:
        ehr = EhrReceiver(port=0)
        ehr_port = await ehr.start()
        daemon = build_daemon(load_config_text(gateway_config(Path(tmp), ehr_port)))
        task = asyncio.get_running_loop().create_task(daemon.supervisor.run(install_signal_handlers=False))
        listener = daemon.sources[0]
        await listener.ready.wait()
        source = await run_clients(listener.port, work)
        # memory per idle open connection
        await asyncio.sleep(0.5)
        tracemalloc.start()
        heap0, rss0 = tracemalloc.get_traced_memory()[0], rss_kib()
        loop = asyncio.get_running_loop()
        socks = []
        for _ in range(args.idle):  # plain non-blocking sockets: the client side adds almost nothing
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", listener.port))
            socks.append(s)
        async with asyncio.timeout(30):
            while listener.counters["connections"] < args.idle + args.connections:
                await asyncio.sleep(0.01)
        heap1, rss1 = tracemalloc.get_traced_memory()[0], rss_kib()
        tracemalloc.stop()
        for s in socks:
            s.close()
        daemon.supervisor.request_stop()
        await task
        await ehr.stop()
    return {
        "messages": sum(len(w) for w in work),
        "connections": args.connections,
        "echo_msgs_per_s": round(echo),
        "source_msgs_per_s": round(source),
        "ratio": round(source / echo, 3),
        "idle_connections": args.idle,
        "heap_bytes_per_connection": round((heap1 - heap0) / args.idle),
        "rss_kib_per_connection": round((rss1 - rss0) / args.idle, 1),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--idle", type=int, default=200)
    p.add_argument("--state-dir", default=None, help="where the outbox goes (default: the system temp dir)")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))
