"""Drive a simulated region against a broker: births, then ``rounds`` steps, then wait for PUBACKs.

Used by ``pumpgw fleet simulate``, the tests, the bench and the web UI's demo.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from fleet.sim.publisher import SimPublisher
from fleet.sim.world import Region


class RegionRunner:
    """One :class:`SimPublisher` per gateway of ``region``; publish steps, wait for the broker."""

    def __init__(
        self, host: str, port: int, region: Region, *, log_dir: Path | None = None, client_prefix: str = "sim"
    ) -> None:
        self.region = region
        self.publishers = [
            SimPublisher(
                host,
                port,
                f"{client_prefix}-{gw.gateway}",
                region.will(g),
                log_path=(log_dir / f"{gw.gateway}.puback.jsonl") if log_dir else None,
                births=region.birth(g),
            )
            for g, gw in enumerate(region.gateways)
        ]

    def start(self, timeout: float = 10.0) -> None:
        for p in self.publishers:
            p.start()
        for p in self.publishers:
            if not p.connected.wait(timeout):
                raise TimeoutError(f"simulated gateway {p.client._client_id!r} could not connect to the broker")

    def step(self, k: int) -> int:
        msgs = self.region.step(k)
        for g, m in msgs:
            self.publishers[g].publish(m)
        return len(msgs)

    def run(self, rounds: int, *, pace_s: float = 0.0, stop: threading.Event | None = None) -> int:
        sent = 0
        for k in range(1, rounds + 1):
            if stop is not None and stop.is_set():
                break
            sent += self.step(k)
            if pace_s:
                time.sleep(pace_s)
        return sent

    def wait_acked(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(p.wait_all_acked(max(0.0, deadline - time.monotonic())) for p in self.publishers)

    def committed(self) -> list[dict[str, str]]:
        return [c for p in self.publishers for c in list(p.committed)]

    def stop(self) -> None:
        for p in self.publishers:
            p.stop()


def simulate_cli(args: argparse.Namespace) -> int:
    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        print(f"pumpgw fleet simulate: --broker {args.broker!r} is not HOST:PORT", file=sys.stderr)
        return 1
    region = Region(args.gateways, args.pumps, rounds=args.rounds, seed=args.seed, prefix=args.prefix)
    runner = RegionRunner(host, int(port), region)
    try:
        runner.start()
        sent = runner.run(args.rounds)
        ok = runner.wait_acked(60)
    except TimeoutError as exc:
        print(f"pumpgw fleet simulate: {exc}", file=sys.stderr)
        return 1
    finally:
        runner.stop()
    print(
        f"published {sent} messages from {args.gateways} gateways x {args.pumps} pumps"
        f"{'' if ok else ' (some not acknowledged by the broker)'}"
    )
    return 0 if ok else 1
