"""Polling 100, 500 and 1,000 simulated pumps every second: does the gateway keep up?

    python bench/poll_bench.py [--sizes 100 500 1000] [--seconds 10] [--mix mixed|ne1000|alaris|bbraun-bcc]

For each size N the simulators run in a separate process (``pumpgw simulate`` on a generated
scenario: ptys for NE-1000/Alaris, TCP racks of 72 slots for B. Braun) and this process runs
the real gateway pollers (:class:`gateway.poller.LinkPoller`, one task per link) on the
written config, with a sink that counts snapshots. Figures, measured over a window after a
warm-up:

* achieved polls/s against the ideal N/s (ratio 1.00 = every pump polled every second);
* p50/p99 poll latency: from the moment a pump's poll started (the poller's schedule) to
  its snapshot reaching the sink;
* gateway CPU % of one core (this process only, getrusage) and per 100 pumps;
* RSS per pump: growth of this process's resident memory over the baseline measured in the
  same run before any poller started, divided by N.

The mixed fleet is 10 % NE-1000, 10 % Alaris-style, 80 % B. Braun (racks scale better:
one connection and one MEM:GET per 72 pumps). The B. Braun 500 ms request gap (§6.4) is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import load_config  # noqa: E402
from gateway.log import configure_logging  # noqa: E402
from gateway.poller.link_poller import LinkPoller, group_by_link  # noqa: E402


class AlarmProbe:
    """With ``--backlog FILE``: the outbox drains that backlog to the EHR simulator while the
    pumps are polled, and an alarm is enqueued on its own lane every 200 ms; latency =
    enqueue -> received by the EHR. Without a file the same alarms run with no backlog (the
    baseline, measured in the same run). The file is a backlog_bench.py cache file; what the
    drain touched is returned to pending afterwards."""

    def __init__(self, backlog: Path | None, tmp: Path) -> None:
        self.backlog = backlog
        self.tmp = tmp
        self.latencies: list[float] = []
        self.window_open = False
        self.delivered = 0

    async def run(self) -> None:
        from gateway.mllp.sender import MllpSender
        from gateway.outbox import Outbox
        from simulators.ehr import EhrReceiver

        sys.path.insert(0, str(ROOT / "bench"))
        from mllp_bench import Arrivals

        ob = Outbox.open(self.backlog or self.tmp / "alarms.db", delivered_retention_s=10**9)
        rx = EhrReceiver()
        port = await rx.start()
        rx.checker = arrivals = Arrivals(time.monotonic)
        kw = dict(
            host="127.0.0.1", port=port, ack_timeout_s=5, connect_timeout_s=5, initial_backoff_s=0.1, max_backoff_s=1
        )
        senders = [MllpSender(ob, lane="doc", **kw), MllpSender(ob, lane="am", **kw)]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            i = 0
            while True:
                await asyncio.sleep(0.2)
                cid = f"ALARM{i:06d}"
                i += 1
                t0 = time.monotonic()
                msg = f"MSH|^~\\&|GW|W|EHR|H|20240101000000+0000||ORU^R40^ORU_R40|{cid}|P|2.6\r".encode()
                await ob.enqueue(lane="am", kind="pcd04", control_id=cid, payload=msg, ttl_s=300)
                at = await arrivals.wait(cid)
                if self.window_open:
                    self.latencies.append(at - t0)
        finally:
            self.delivered = senders[0].delivered
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await rx.stop()
            ob.close()
            if self.backlog is not None:
                sys.path.insert(0, str(ROOT / "bench"))
                from backlog_bench import reset

                reset(self.backlog)


def scenario_text(n: int, mix: str) -> str:
    shares = {"mixed": {"ne1000": 0.1, "alaris": 0.1, "bbraun-bcc": 0.8}}.get(mix, {mix: 1.0})
    counts = {p: int(n * s) for p, s in shares.items()}
    counts[next(iter(counts))] += n - sum(counts.values())
    out = ["[simulation]", "acceleration = 10", ""]
    for protocol, count in counts.items():
        if count:
            prefix = {"ne1000": "ne-", "alaris": "al-", "bbraun-bcc": "bb-"}[protocol]
            out += [
                "[[groups]]",
                f"count = {count}",
                f'id_prefix = "{prefix}"',
                f'protocol = "{protocol}"',
                "rate_ml_h = 5",
                "rate_step_ml_h = 0.01",
                "poll_interval_s = 1",
                "",
            ]
    return "\n".join(out)


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sink:
    def __init__(self) -> None:
        self.pollers: dict[str, LinkPoller] = {}
        self.window_open = False
        self.count = 0
        self.latencies: list[float] = []

    async def on_snapshot(self, pump_id: str, snapshot: object) -> None:
        if not self.window_open:
            return
        self.count += 1
        poller = self.pollers[pump_id]
        state = next(s for s in poller.pumps if s.config.id == pump_id)
        started = state.next_poll - state.config.poll_interval_s
        self.latencies.append(time.monotonic() - started)

    async def on_identity(self, pump_id: str, identity: object) -> None: ...
    async def on_identity_unreadable(self, pump_id: str, reason: str) -> None: ...
    async def on_comm_lost(self, pump_id: str, at: object, reason: str) -> None: ...
    async def on_comm_restored(self, pump_id: str, at: object) -> None: ...


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    config_path: Path, n: int, seconds: float, warmup: float, probe: AlarmProbe | None = None
) -> dict[str, float]:
    config = load_config(config_path)
    sink = Sink()
    base_rss = rss_kib()
    pollers = []
    for key, pumps in group_by_link(config.pumps).items():
        poller = LinkPoller(key, pumps, sink, backoff_initial_s=0.2, backoff_max_s=2.0)
        pollers.append(poller)
        for pump in pumps:
            sink.pollers[pump.id] = poller
    tasks = [asyncio.create_task(p.run(), name=f"poller {p.key}") for p in pollers]
    if probe is not None:
        tasks.append(asyncio.create_task(probe.run(), name="alarm probe"))
    try:
        await asyncio.sleep(warmup)
        usage0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        sink.window_open = True
        if probe is not None:
            probe.window_open = True
        await asyncio.sleep(seconds)
        sink.window_open = False
        if probe is not None:
            probe.window_open = False
        usage1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        rss = rss_kib()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    cpu_s = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {
        "links": len(pollers),
        "polls_per_s": sink.count / (t1 - t0),
        "ideal": float(n),
        "p50_ms": percentile(sink.latencies, 0.50) * 1000,
        "p99_ms": percentile(sink.latencies, 0.99) * 1000,
        "cpu_pct": 100 * cpu_s / (t1 - t0),
        "rss_kib_per_pump": (rss - base_rss) / n,
        "base_rss_mib": base_rss / 1024,
        **(
            {
                "alarm_p50_ms": percentile(probe.latencies, 0.5) * 1000,
                "alarm_p99_ms": percentile(probe.latencies, 0.99) * 1000,
                "alarm_max_ms": max(probe.latencies, default=float("nan")) * 1000,
                "alarms": len(probe.latencies),
                "drained": probe.delivered,
            }
            if probe is not None
            else {}
        ),
    }


def run_size(
    n: int, mix: str, seconds: float, warmup: float, backlog: Path | None = None, alarms: bool = False
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pumpgw-bench-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "scenario.toml").write_text(scenario_text(n, mix), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "simulate",
                "--scenario",
                str(tmp_path / "scenario.toml"),
                "--write-config",
                str(tmp_path / "gw.toml"),
                "--pty-dir",
                str(tmp_path / "ptys"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            assert sim.stdout is not None
            for line in sim.stdout:
                if line.startswith("running"):
                    break
            else:
                raise SystemExit(f"simulator did not start for N={n}")
            sim_cpu0 = _proc_cpu_s(sim.pid)
            t0 = time.monotonic()
            probe = AlarmProbe(backlog, tmp_path) if alarms else None
            result = asyncio.run(measure(tmp_path / "gw.toml", n, seconds, warmup, probe))
            result["sim_cpu_pct"] = 100 * (_proc_cpu_s(sim.pid) - sim_cpu0) / (time.monotonic() - t0)
        finally:
            sim.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.communicate(timeout=20)
            if sim.poll() is None:
                sim.kill()
                sim.wait()
    return result


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window per size")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds before the window opens")
    parser.add_argument("--mix", default="mixed", choices=["mixed", "ne1000", "alaris", "bbraun-bcc"])
    parser.add_argument(
        "--backlog",
        type=Path,
        default=None,
        help="an outbox file with a backlog (bench/backlog_bench.py cache) drained while polling; "
        "alarm latency is measured with it and, in the same run, without any backlog",
    )
    args = parser.parse_args()
    configure_logging(level="error", fmt="console")  # power-up alarms etc. are expected here
    print(
        f"poll_bench: mix={args.mix}, poll interval 1 s, window {args.seconds:g} s after {args.warmup:g} s warm-up;"
        f" {os.cpu_count()} CPUs; pty max {Path('/proc/sys/kernel/pty/max').read_text().strip()}"
    )
    print(
        f"{'N':>6} {'links':>6} {'polls/s':>9} {'ideal':>7} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'gw CPU%':>8} {'CPU%/100':>9} {'sim CPU%':>9} {'RSS KiB/pump':>13}"
    )
    for n in args.sizes:
        runs = [("", None, False)] if args.backlog is None else [("quiet", None, True), ("drain", args.backlog, True)]
        for label, backlog, alarms in runs:
            r = run_size(n, args.mix, args.seconds, args.warmup, backlog, alarms)
            print(
                f"{n:>6} {r['links']:>6} {r['polls_per_s']:>9.1f} {r['ideal']:>7.0f} "
                f"{r['polls_per_s'] / r['ideal']:>6.2f} "
                f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['cpu_pct']:>8.1f} {100 * r['cpu_pct'] / n:>9.2f} "
                f"{r['sim_cpu_pct']:>9.1f} {r['rss_kib_per_pump']:>13.1f}",
                flush=True,
            )
            if alarms:
                print(
                    f"       alarms ({label}: {'no backlog' if backlog is None else f'draining {backlog.name}'}, "
                    f"{r['drained']} drained): {r['alarms']} alarms p50 {r['alarm_p50_ms']:.1f} ms "
                    f"p99 {r['alarm_p99_ms']:.1f} ms max {r['alarm_max_ms']:.1f} ms "
                    f"(goal: p99 <= poll interval + 100 ms = 1100 ms, <= 1.2x no backlog)",
                    flush=True,
                )
    print(
        "ratio = achieved / ideal polls per second (1.00: every pump polled every second); "
        "RSS per pump over this process's baseline measured before the pollers started."
    )


if __name__ == "__main__":
    main()
