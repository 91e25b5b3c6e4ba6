"""Soak: 500 simulated pumps with random faults and a receiver that goes down and up.

    python bench/soak.py [--minutes 30] [--pumps 500] [--poll-interval 5] [--report-s 60]

Two processes. The *ward* (this script with ``--ward``, a child) runs every simulated pump
(10 % NE-1000 and 10 % Alaris-style on ptys, 80 % B. Braun in TCP racks), the EHR receiver
simulator, and a fault loop that every second hits a random pump with one of: garbage
before the reply, a corrupted checksum, silence, a disconnect for a few seconds, a hostile
numeric value (``NaN``, ``1E+999999``, ``1_000``, ``-5``) or a clean-up. The receiver is
down for 30 s every 120 s. The *gateway* is the real daemon (``build_daemon`` on the written
configuration, MQTT off) in this process, so the figures printed every ``--report-s``
seconds are the gateway's own: RSS, open file descriptors, asyncio tasks, the outbox file
(database + WAL), messages pending and delivered (still held; delivered rows are compacted
after ``--retention-s``), and WARNING/ERROR log records in the interval.

What "flat" means: after the first report (warm-up, first PCD-01s), RSS, fds and tasks stay
within a few percent and the outbox stays bounded (PCD-01 TTL and the byte budget); the last
line prints the ratios last/first-after-warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOSTILE = ("NaN", "1E+999999", "1_000", "-5", "Infinity", "9" * 60)


def scenario_text(n: int, poll_interval_s: float) -> str:
    counts = {"ne1000": n // 10, "alaris": n // 10}
    counts["bbraun-bcc"] = n - sum(counts.values())
    out = ["[simulation]", "acceleration = 10", ""]
    for protocol, count in counts.items():
        prefix = {"ne1000": "ne-", "alaris": "al-", "bbraun-bcc": "bb-"}[protocol]
        out += [
            "[[groups]]",
            f"count = {count}",
            f'id_prefix = "{prefix}"',
            f'protocol = "{protocol}"',
            "rate_ml_h = 5",
            "rate_step_ml_h = 0.1",
            "vtbi_ml = 100000",
            f"poll_interval_s = {poll_interval_s}",
            "",
        ]
    return "\n".join(out)


# -- the ward (child process) ---------------------------------------------------------------


def _patch_hostile_values(hostile: dict[int, str]) -> None:
    """Let the fault loop make a pump report a hostile number (simulators have no such fault)."""
    from drivers.bbraun_bcc import codec as bcc_codec
    from simulators.alaris import AlarisLine
    from simulators.bbraun_bcc import BccRack

    rack_records = BccRack.pump_records

    def pump_records(self, position, pump):
        records = rack_records(self, position, pump)
        value = hostile.get(id(pump))
        if value is None:
            return records
        return [
            bcc_codec.Record(r.seconds, r.pillar, r.slot, r.parameter, value if r.parameter == "INRT" else r.value)
            for r in records
        ]

    alaris_inf = AlarisLine._inf

    def inf(self) -> str:
        text = alaris_inf(self)
        value = hostile.get(id(self.pump))
        if value is None:
            return text
        fields = text.split("^")
        fields[4] = value
        return "^".join(fields)

    BccRack.pump_records = pump_records  # type: ignore[method-assign]
    AlarisLine._inf = inf  # type: ignore[method-assign]


async def ward(workdir: Path, n: int, poll_interval_s: float, seed: int) -> None:
    import tomllib

    from simulators.ehr import EhrReceiver
    from simulators.scenario import Action, Scenario, ScenarioFile
    from simulators.scenario_runner import ScenarioRunner

    rng = random.Random(seed)
    hostile: dict[int, str] = {}
    _patch_hostile_values(hostile)
    scenario = Scenario(ScenarioFile.model_validate(tomllib.loads(scenario_text(n, poll_interval_s))), "soak")
    receiver = EhrReceiver()
    port = await receiver.start()
    async with ScenarioRunner(scenario, pty_dir=workdir / "ptys") as runner:
        config = runner.gateway_config_toml(ehr_port=port, outbox_path=str(workdir / "outbox.sqlite"))
        (workdir / "gw.toml").write_text(config, encoding="utf-8")
        print("ready", flush=True)
        ids = list(runner.handles)
        t0 = time.monotonic()
        outages = 0
        while True:
            await asyncio.sleep(1.0)
            elapsed = time.monotonic() - t0
            phase = elapsed % 120
            if phase >= 90 and receiver.up:
                await receiver.go_down()
                outages += 1
            elif phase < 90 and not receiver.up:
                await receiver.come_up()
            pump_id = rng.choice(ids)
            handle = runner.handles[pump_id]
            fault = rng.choice(["garbage", "corrupt", "silent", "disconnect", "hostile", "clear", "clear"])
            if fault == "hostile":
                hostile[id(handle.pump)] = rng.choice(HOSTILE)
                continue
            if fault == "clear":
                hostile.pop(id(handle.pump), None)
                await runner.apply(pump_id, Action(t_s=0, action="clear_faults"))
                continue
            if fault == "disconnect" and handle.rack_server is not None and rng.random() < 0.8:
                continue  # a rack disconnect takes 72 pumps: rarer than a pty unplugged
            action = {
                "garbage": Action(t_s=0, action="fault", garbage_before_reply="\x00\xffjunk\r"),
                "corrupt": Action(t_s=0, action="fault", corrupt_checksum=True),
                "silent": Action(t_s=0, action="fault", silent=True),
                "disconnect": Action(t_s=0, action="disconnect", duration_s=rng.uniform(2, 15)),
            }[fault]
            await runner.apply(pump_id, action)


# -- the gateway (this process) -------------------------------------------------------------


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warnings = self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1
        else:
            self.warnings += 1


def proc_status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def outbox_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


async def gateway(workdir: Path, minutes: float, report_s: float, retention_s: float) -> list[tuple[float, ...]]:
    from gateway.config import load_config
    from gateway.daemon import build_daemon

    config = load_config(workdir / "gw.toml")
    # Delivered rows are kept for a day by default; a shorter retention shows within the run
    # that the outbox is bounded (compaction runs every minute).
    config = config.model_copy(
        update={"outbox": config.outbox.model_copy(update={"delivered_retention_s": retention_s})}
    )
    daemon = build_daemon(config)
    counter = Counter()
    logging.getLogger().addHandler(counter)
    task = asyncio.create_task(daemon.supervisor.run(), name="daemon")
    rows: list[tuple[float, ...]] = []
    t0 = time.monotonic()
    print(
        f"{'min':>5} {'RSS MiB':>8} {'fds':>5} {'tasks':>6} {'outbox KiB':>11} {'pending':>8} {'delivered':>10} "
        f"{'warn':>6} {'error':>6}",
        flush=True,
    )
    try:
        while time.monotonic() - t0 < minutes * 60:
            await asyncio.sleep(report_s)
            gc.collect()
            stats = daemon.outbox.stats()
            pending = sum(s.pending for s in stats.values())
            delivered = sum(s.delivered for s in stats.values())
            row = (
                (time.monotonic() - t0) / 60,
                proc_status("VmRSS") / 1024,
                len(os.listdir("/proc/self/fd")),
                len(asyncio.all_tasks()),
                outbox_bytes(config.outbox.path) / 1024,
                pending,
                delivered,
            )
            rows.append(row)
            print(
                f"{row[0]:>5.1f} {row[1]:>8.1f} {row[2]:>5d} {row[3]:>6d} {row[4]:>11.0f} {row[5]:>8d} {row[6]:>10d} "
                f"{counter.warnings:>6d} {counter.errors:>6d}",
                flush=True,
            )
            counter.warnings = counter.errors = 0
            if task.done():
                raise SystemExit(f"daemon stopped: {task.exception()!r}")
    finally:
        daemon.supervisor.request_stop()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--pumps", type=int, default=500)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--report-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--retention-s", type=float, default=300.0, help="delivered rows kept this long")
    parser.add_argument("--ward", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from gateway.log import configure_logging

    configure_logging(level="error" if args.ward else "warning", fmt="console", stream=open(os.devnull, "w"))
    if args.ward:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(ward(args.ward, args.pumps, args.poll_interval, args.seed))
        return
    with tempfile.TemporaryDirectory(prefix="pumpgw-soak-") as tmp:
        workdir = Path(tmp)
        (workdir / "ptys").mkdir()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        sim = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--ward",
                str(workdir),
                "--pumps",
                str(args.pumps),
                "--poll-interval",
                str(args.poll_interval),
                "--seed",
                str(args.seed),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert sim.stdout is not None
            if sim.stdout.readline().strip() != "ready":
                raise SystemExit("the simulated ward did not start")
            print(
                f"soak: {args.pumps} pumps, poll every {args.poll_interval:g} s, random faults every 1 s, "
                f"receiver down 30 s of every 120 s, {args.minutes:g} min; {os.cpu_count()} CPUs",
                flush=True,
            )
            rows = asyncio.run(gateway(workdir, args.minutes, args.report_s, args.retention_s))
        finally:
            sim.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.wait(timeout=20)
            if sim.poll() is None:
                sim.kill()
                sim.wait()
    if len(rows) >= 3:
        first, last = rows[1], rows[-1]  # rows[0] is warm-up
        print(
            f"last / first after warm-up: RSS {last[1] / first[1]:.2f}, fds {last[2] / first[2]:.2f}, "
            f"tasks {last[3] / first[3]:.2f}, outbox {last[4] / max(first[4], 1):.2f}"
        )


if __name__ == "__main__":
    main()
