"""Inbound vendor-server feed throughput (issue 13, item 7).

Measures in the same run, on loopback, with the same stop-and-wait MLLP client (what a vendor
server does: the next message after the ACK of the previous one), ``--connections`` of them:

* **echo**: a bare asyncio MLLP server that answers every frame with a fixed ACK at once;
* **durable commits**: bare SQLite transactions (WAL, synchronous=FULL) in the outbox's
  directory -- the disk's own limit; with stop-and-wait senders a group commit holds at most
  one message per connection, so ``connections x`` this bounds any gateway;
* **source, conformance = "report"** (the default; the goal's figure): a real in-process
  gateway (gateway.daemon.build_daemon) with one ``[[sources]]`` listener: framing ->
  tolerant parse -> mapping -> drug-library verdicts -> events -> HL7 rendering -> outbox
  commit (concurrent connections share group commits) -> ACK; the conformance check runs after
  the ACK (gateway/sources/conformance.py) and the bench waits for it before stopping the CPU
  clock; an EHR receiver takes the outgoing messages meanwhile;
* **source, conformance = "refuse_errors"**: the same with the check before the commit (it
  decides AE), printed for comparison; the goal is for the default mode.

It prints messages/s and CPU microseconds per message (this process: clients, server and all
it runs; steadier than wall time on shared cores) of each, and the ratios (goal >= 0.3 of
the echo). Then it opens ``--idle`` connections to the listener and reports the memory they
hold: Python heap (tracemalloc) and process RSS, per connection. Figures are from this
machine and this run only.

It also prints a **floor**: this process's CPU per message for the steps no design of this
source can skip -- the echo's own receive and ACK, one tolerant parse, the conformance check of
the parsed message, and a durable commit shared by ``--connections`` stop-and-wait senders --
with the mapping, drug-library verdicts, events and HL7 rendering counted as free. Its ratio to
the echo is the best a gateway doing that work could reach on this machine (``floor_cpu_ratio``).

Run: .venv/bin/python bench/source_bench.py [--messages 2000] [--connections 4] [--idle 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.mllp.framing import MllpDecoder, frame
from common.pcd.conformance import check_message
from common.pcd.parse import parse_message
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


async def run_clients(port: int, work: list[list[bytes]]) -> tuple[float, float]:
    """Messages/s (wall clock) and this process's CPU microseconds per message (clients,
    server and everything the server runs meanwhile; steadier than wall time on shared cores)."""
    t0, c0 = time.perf_counter(), time.process_time()
    counts = await asyncio.gather(*(client(port, w) for w in work))
    n = sum(counts)
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6


async def echo_rate(work) -> tuple[float, float]:
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


def gateway_config(state: Path, ehr_port: int, conformance: str) -> str:
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
conformance = "{conformance}"
{devices}
"""


def durable_commits(state_dir, n: int = 300) -> tuple[float, float]:
    """Bare SQLite transactions (WAL, synchronous=FULL, one 2 KB row each) in the outbox's
    directory: commits/s -- the disk's own limit; stop-and-wait senders put at most one message
    each into a group commit, so ``connections`` times this is a ceiling no processing can beat
    -- and CPU microseconds per commit (the fsync's kernel work is this process's CPU too)."""
    with tempfile.TemporaryDirectory(dir=state_dir) as tmp:
        db = sqlite3.connect(Path(tmp) / "fsync.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (payload BLOB)")
        payload = b"x" * 2048
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?)", (payload,))
            db.execute("COMMIT")
        rate, cpu = n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6
        db.close()
    return rate, cpu


def floor_cpu(work: list[list[bytes]], echo_cpu: float, commit_cpu: float, connections: int) -> dict:
    """CPU per message of the steps every design must do (see the module docstring)."""
    sample = [m for w in work for m in w][:500]
    c0 = time.process_time()
    parsed = [parse_message(m) for m in sample]
    parse = (time.process_time() - c0) / len(sample) * 1e6
    c0 = time.process_time()
    for m in parsed:
        check_message(m)
    check = (time.process_time() - c0) / len(sample) * 1e6
    commit = commit_cpu / connections
    total = echo_cpu + parse + check + commit
    return {
        "parse_us": round(parse),
        "check_us": round(check),
        "commit_us_per_msg": round(commit),
        "floor_cpu_us_per_msg": round(total),
        "floor_cpu_ratio": round(echo_cpu / total, 3),
        "floor_cpu_ratio_without_check": round(echo_cpu / (total - check), 3),
    }


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4


async def source_run(work, conformance: str, state_dir, idle: int) -> dict:
    """One in-process gateway: messages/s through the listener, then (if ``idle``) the memory
    per open connection. In report mode also how long the checker ran on after the last ACK."""
    with tempfile.TemporaryDirectory(dir=state_dir) as tmp:
        ehr = EhrReceiver(port=0)
        ehr_port = await ehr.start()
        daemon = build_daemon(load_config_text(gateway_config(Path(tmp), ehr_port, conformance)))
        task = asyncio.get_running_loop().create_task(daemon.supervisor.run(install_signal_handlers=False))
        listener = daemon.sources[0]
        await listener.ready.wait()
        rate, cpu = await run_clients(listener.port, work)
        t0, c0 = time.perf_counter(), time.process_time()
        await listener.handler.conformance.drain()
        n = sum(len(w) for w in work)
        out = {
            "msgs_per_s": round(rate),
            "cpu_us_per_msg": round(cpu + (time.process_time() - c0) / n * 1e6),  # with the checks after
            "checker_ran_on_s": round(time.perf_counter() - t0, 3),
        }
        counters = listener.handler.counters
        out |= {k: counters[k] for k in ("accepted", "conformance_checked", "conformance_unchecked")}
        if idle:
            out |= await idle_memory(listener, idle, len(work))
        daemon.supervisor.request_stop()
        await task
        await ehr.stop()
    return out


async def idle_memory(listener, idle: int, busy: int) -> dict:
    await asyncio.sleep(0.5)
    tracemalloc.start()
    heap0, rss0 = tracemalloc.get_traced_memory()[0], rss_kib()
    loop = asyncio.get_running_loop()
    socks = []
    for _ in range(idle):  # plain non-blocking sockets: the client side adds almost nothing
        s = socket.socket()
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", listener.port))
        socks.append(s)
    async with asyncio.timeout(30):
        while listener.counters["connections"] < idle + busy:
            await asyncio.sleep(0.01)
    heap1, rss1 = tracemalloc.get_traced_memory()[0], rss_kib()
    tracemalloc.stop()
    for s in socks:
        s.close()
    return {
        "idle_connections": idle,
        "heap_bytes_per_connection": round((heap1 - heap0) / idle),
        "rss_kib_per_connection": round((rss1 - rss0) / idle, 1),
    }


async def main(args) -> dict:
    configure_logging(level="error", fmt="json")
    work = workload(args.messages, args.connections)
    echo, echo_cpu = await echo_rate(work)
    commits, commit_cpu = durable_commits(args.state_dir)
    floor = floor_cpu(work, echo_cpu, commit_cpu, args.connections)
    report = await source_run(work, "report", args.state_dir, args.idle)
    refuse = await source_run(work, "refuse_errors", args.state_dir, 0)
    rate, refuse_rate = report.pop("msgs_per_s"), refuse.pop("msgs_per_s")
    return {
        "messages": sum(len(w) for w in work),
        "connections": args.connections,
        "echo_msgs_per_s": round(echo),
        "echo_cpu_us_per_msg": round(echo_cpu),
        "source_msgs_per_s": rate,  # conformance = "report" (the default): the goal's figure
        "ratio": round(rate / echo, 3),
        "cpu_ratio": round(echo_cpu / report["cpu_us_per_msg"], 3),  # echo CPU / source CPU per message
        "durable_commits_per_s": round(commits),  # bare SQLite, same disk (see durable_commits)
        "commit_ceiling_ratio": round(commits * args.connections / echo, 3),
        "floor": floor,  # the steps no design can skip, everything else free
        "refuse_errors_msgs_per_s": refuse_rate,  # the checker on the ACK path
        "refuse_errors_ratio": round(refuse_rate / echo, 3),
        "report_mode": report,
        "refuse_errors_mode": refuse,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--idle", type=int, default=200)
    p.add_argument("--state-dir", default=None, help="where the outbox goes (default: the system temp dir)")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))
