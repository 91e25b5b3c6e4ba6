"""Cost of traceability per poll, against the event tracker's own per-snapshot work.

Run from the repository root:  python bench/identity_bench.py [--pumps 1000] [--rounds 20]

Every snapshot goes through the identity registry (compare with the slot's record; last_seen
kept in memory, flushed once a minute). Baseline, measured in the same run: the event
tracker's ``on_snapshot`` on the same snapshots -- work the pipeline already does per poll.
Also: audit appends per second (each its own synchronous=FULL commit) against a plain
SQLite insert+commit on the same file system with the same durability.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.model import ChannelSnapshot, ChannelState, PumpIdentity, PumpSnapshot, Quantity  # noqa: E402
from gateway.audit import AuditTrail  # noqa: E402
from gateway.events.tracker import PumpEventTracker  # noqa: E402
from gateway.identity import IdentityRegistry  # noqa: E402
from gateway.identity.trace import Traceability  # noqa: E402
from gateway.log import configure_logging  # noqa: E402

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def snapshots(pumps: int, rounds: int) -> list[list[PumpSnapshot]]:
    channel = ChannelSnapshot("1", ChannelState.INFUSING, rate=Quantity(Decimal("15.4"), "mL/h"))
    out = []
    for r in range(rounds):
        at = T0 + timedelta(seconds=r)
        out.append(
            [
                PumpSnapshot(
                    f"p{i:04d}",
                    PumpIdentity("BD", "Asena GH", f"8002-{i:05d}", "Rev 2.1.5"),
                    (channel,),
                    received_at=at,
                )
                for i in range(pumps)
            ]
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pumps", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--appends", type=int, default=200)
    args = ap.parse_args()
    configure_logging(level="warning")
    data = snapshots(args.pumps, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        trail = AuditTrail.open(Path(tmp) / "gw.db")
        trace = Traceability(IdentityRegistry(trail, {}))
        for snap in data[0]:  # registration (one audit row each) is not the steady state
            _events, obs = trace.observe_snapshot(snap)
            trace.commit(obs)
        trackers = {s.pump_id: PumpEventTracker(s.pump_id) for s in data[0]}
        start = time.perf_counter()
        for batch in data[1:]:
            for snap in batch:
                trackers[snap.pump_id].on_snapshot(snap)
        tracker_s = time.perf_counter() - start
        start = time.perf_counter()
        for batch in data[1:]:
            for snap in batch:
                _events, obs = trace.observe_snapshot(snap)
                trace.commit(obs)
        trace_s = time.perf_counter() - start
        n = args.pumps * (args.rounds - 1)
        print(f"snapshots: {n}")
        print(f"event tracker (baseline): {n / tracker_s:10.0f} snapshots/s")
        print(
            f"traceability:             {n / trace_s:10.0f} snapshots/s   "
            f"cost ratio vs tracker: {trace_s / tracker_s:.2f}x"
        )

        start = time.perf_counter()
        for i in range(args.appends):
            trail.append("bench.row", f"p{i}", {"i": i, "serial": "8002-51740"})
        audit_s = time.perf_counter() - start
        raw = sqlite3.connect(Path(tmp) / "plain.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute("CREATE TABLE t (a TEXT, b TEXT)")
        start = time.perf_counter()
        for i in range(args.appends):
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO t VALUES (?, ?)", (f"p{i}", "x" * 60))
            raw.execute("COMMIT")
        plain_s = time.perf_counter() - start
        raw.close()
        print(f"plain insert+commit (baseline): {args.appends / plain_s:8.0f} rows/s")
        print(
            f"audit append (chained):         {args.appends / audit_s:8.0f} rows/s   "
            f"ratio vs plain: {plain_s / audit_s:.2f}x"
        )
        trail.close()


if __name__ == "__main__":
    main()
