"""The restart matrix with real processes: `pumpgw run` on a simulated ward (NE-1000, Alaris,
B. Braun), SIGKILLed and SIGTERMed at random moments while alarms are active, infusions run,
are titrated, and pumps and a rack are offline; what the real MLLP receiver logged is read back.

Every alarm onset ends exactly once (linked to it), no delivery start follows a start without
a stop, and every pump that went offline is reported online again.
"""

from __future__ import annotations

import os
import random

from tests.e2e.restart_story import StoryPlan, run_restart_story


async def test_the_story_at_the_receiver_survives_sigkill_and_sigterm_at_random_moments(tmp_path):
    # A new random ward history each run; PUMPGW_STORY_SEED=<n> replays one.
    seed = int(os.environ.get("PUMPGW_STORY_SEED") or random.randrange(1 << 30))
    result = await run_restart_story(tmp_path, StoryPlan(seed=seed))
    report = result.report
    details = report.summary() | {
        "orphaned": report.orphaned_onsets[:5],
        "start_after_start": report.start_after_start[:5],
        "lost_online": report.lost_online[:5],
        "unknown_parents": report.unknown_parents[:5],
        "phases": result.phases,
        "daemon_log": str(tmp_path / "daemon.log"),
        "PUMPGW_STORY_SEED": seed,
    }
    print(details)
    assert report.ok, details
    # the story was told, not trivially empty: alarms, starts, offline and online happened
    assert report.onsets >= 3 and report.starts >= 12 and report.offline >= 1, details
    assert sum(p.startswith("kill@") for p in result.phases) == 2
    assert sum(p.startswith("term@") for p in result.phases) == 1 and result.phases[-1] == "quiet+term"
    # one stable device identity per bed in OBX-18 (a pump that went silent before it was ever
    # identified is named by its configured id alone until it answers: docs/hl7.md)
    identified = {bed: {i for i in ids if "^" in i} for bed, ids in report.devices_per_location.items()}
    assert all(len(ids) <= 1 for ids in identified.values()), report.devices_per_location
    assert all(
        ids <= {bed} for bed, all_ids in report.devices_per_location.items() for ids in [all_ids - identified[bed]]
    ), report.devices_per_location
