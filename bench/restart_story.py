"""The 500-pump restart story: does the receiver hear a true story across 5 SIGKILLs?

    python bench/restart_story.py [--ne1000 50] [--alaris 50] [--bbraun 400] [--kills 5] [--seed N]

Runs ``pumpgw run`` (a subprocess) against a simulated ward -- NE-1000 and Alaris-style pumps
on their own ptys, B. Braun pumps in TCP racks -- and the EHR receiver simulator, and kills
the daemon with SIGKILL ``--kills`` times at random moments while alarms are raised and
cleared, infusions are titrated and pumps or whole racks are unplugged. A last phase quiets
the ward and stops the daemon cleanly. Every message the receiver logged is then read back
(``tests/e2e/restart_story.py``, ``gateway/hl7/story.py``).

Prints the counts that must all be 0: orphaned onsets, start-after-start, lost online (plus
double ends, unknown parents, online without offline), next to what was told.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.restart_story import StoryPlan, run_restart_story  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ne1000", type=int, default=50)
    ap.add_argument("--alaris", type=int, default=50)
    ap.add_argument("--bbraun", type=int, default=400)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--phase-s", type=float, nargs=2, default=(12.0, 20.0), metavar=("MIN", "MAX"))
    ap.add_argument("--actions", type=int, default=40, help="ward changes per phase")
    ap.add_argument("--poll-interval-s", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--dir", type=Path, default=None, help="keep the run here (default: a temp dir)")
    args = ap.parse_args()
    plan = StoryPlan(
        ne1000=args.ne1000,
        alaris=args.alaris,
        bbraun=args.bbraun,
        kills=args.kills,
        sigterms=0,
        phase_s=tuple(args.phase_s),
        actions_per_phase=args.actions,
        poll_interval_s=args.poll_interval_s,
        settle_timeout_s=180.0,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as d:
        workdir = args.dir if args.dir else Path(d)
        result = asyncio.run(run_restart_story(workdir, plan, progress=lambda m: print(m, flush=True)))
    r = result.report
    total = args.ne1000 + args.alaris + args.bbraun
    print(
        f"{total} pumps, {args.kills} SIGKILLs, seed {args.seed}: phases {', '.join(result.phases)}; "
        f"{result.actions} ward changes; {result.received} messages received in {result.seconds:.0f} s"
    )
    print(
        f"told: {r.messages} distinct messages ({r.duplicates} resent duplicates), {r.onsets} alarm onsets, "
        f"{r.starts} delivery starts, {r.offline} offline reports"
    )
    print(f"orphaned onsets    : {len(r.orphaned_onsets)}")
    print(f"start-after-start  : {len(r.start_after_start)}")
    print(f"lost online        : {len(r.lost_online)}")
    print(
        f"double ends {len(r.double_ends)}, unknown parents {len(r.unknown_parents)}, "
        f"online without offline {len(r.online_without_offline)}, "
        f"beds with more than one identified OBX-18 "
        f"{sum(len({i for i in v if '^' in i}) > 1 for v in r.devices_per_location.values())}"
    )
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
