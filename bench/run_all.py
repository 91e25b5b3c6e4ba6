"""Run the benches that carry a goal and print one table: bench, figure, same-run baseline.

    python bench/run_all.py [--quick] [--only NAME ...]

Each bench runs in its own process, one after another (the machine is shared: never two at
once). The table keeps every output line of a bench that states a goal or a ratio, so each
figure is printed beside the baseline it was measured against. ``--quick`` runs the smaller
sizes (no 1M backlog, shorter polls). The 1-minute load average before each bench is shown:
figures from a loaded machine are not comparable with figures from an idle one.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BENCHES: dict[str, tuple[list[str], list[str]]] = {
    # name: (full arguments, --quick arguments)
    "backlog": (
        ["--sizes", "1000", "100000", "1000000", "--drain", "20000"],
        ["--sizes", "1000", "100000", "--drain", "5000", "--alarms", "30"],
    ),
    "outbox": (["--n", "20000"], ["--n", "5000"]),
    "mllp": (["--backlog", "100000"], ["--backlog", "10000", "--alarms", "50"]),
    "mqtt": (["--events", "5000"], ["--events", "2000", "--rounds", "1"]),
    "hl7": ([], ["--seconds", "0.2"]),
    "poll": (["--sizes", "1000", "--seconds", "30"], ["--sizes", "100", "--seconds", "5"]),
    "source": ([], ["--messages", "800", "--idle", "20"]),
}
KEEP = re.compile(r"goal|\d\.\d\dx|bare|baseline|backlog|ready|alarm|PCD|ACK|ratio|echo|msgs_per_s|floor", re.I)
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")  # the daemon's own log lines, not figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHES))
    args = ap.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    for name, (full, quick) in BENCHES.items():
        if args.only and name not in args.only:
            continue
        load = os.getloadavg()[0]
        started = time.monotonic()
        script = str(ROOT / "bench" / f"{name}_bench.py")
        proc = subprocess.run(
            [sys.executable, script, *(quick if args.quick else full)], cwd=ROOT, capture_output=True, text=True
        )
        took = time.monotonic() - started
        lines = [line.rstrip() for line in proc.stdout.splitlines() if KEEP.search(line) and not LOG_LINE.match(line)]
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            lines = [f"FAILED (exit {proc.returncode}): {tail}"]
        for i, line in enumerate(lines or ["(no figure printed)"]):
            rows.append((name if i == 0 else "", load if i == 0 else -1, took if i == 0 else -1, line))
    print(f"{'bench':<8} {'load':>5} {'secs':>5}  figure (same-run baseline beside it)")
    for name, load, took, line in rows:
        head = f"{name:<8} {load:>5.2f} {took:>5.0f}" if load >= 0 else f"{'':<8} {'':>5} {'':>5}"
        print(f"{head}  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
