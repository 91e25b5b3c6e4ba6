"""What the fleet demo publishes: the region's history, a release still rolling out, heartbeats.

Part 1's simulator (:mod:`fleet.sim`) scripts two weeks of a region; the demo publishes it paced
by the collector, then a second library release that each ward takes up at its own pace, two
gateway alerts, and every gateway online -- so every page of the UI has something to show when
it opens -- and keeps the gateways' heartbeats going while the UI serves.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet.collector import Collector
from fleet.sim import payloads as P
from fleet.sim.run import RegionRunner
from fleet.sim.world import Region
from fleet.web.demo_services import DEMO_PREFIX

ROLLOUT_H = 36
SECOND_RELEASE = "L9"


def rollout(region: Region, released_at: datetime) -> list[tuple[int, Any]]:
    """A second library release, ``ROLLOUT_H`` hours ago, that each ward takes up at its own
    pace (the first almost fully, the last barely), so the uptake page has curves below
    100 %, 80 % markers not yet reached and stragglers to chase."""
    out: list[tuple[int, Any]] = [(0, P.release(region.prefix, version=SECOND_RELEASE, released_at=released_at))]
    for g, gw in enumerate(region.gateways):
        out.append(
            (
                g,
                P.gateway_library(
                    region.prefix,
                    gw.site,
                    gw.gateway,
                    version=SECOND_RELEASE,
                    applied_at=released_at + timedelta(minutes=5),
                ),
            )
        )
        share = (0.95, 0.8, 0.6, 0.3)[g % 4]
        for i, pump in enumerate(p for p in gw.pumps if not p.gone):
            if i >= round(share * len(gw.pumps)):
                break
            at = released_at + timedelta(hours=1 + (ROLLOUT_H - 2) * (i + region.rng.random()) / len(gw.pumps))
            previous = pump.ident()
            pump.library = SECOND_RELEASE
            out.append((g, region._event(gw, pump, "pump_library_changed", at, previous=previous)))
            out.append((g, region._state(gw, pump, at)))
    return out


def publish_history(
    runner: RegionRunner, region: Region, collector: Collector, rounds: int, stop: threading.Event
) -> None:
    """The scripted history, the second release, two alerts and a heartbeat of every gateway;
    returns once the collector has written what it got (bounded waits)."""
    # Paced by the collector: a broker queues only so much for one subscriber (Mosquitto's
    # max_queued_messages defaults to 1000) and would drop the rest of a burst.
    sent = 0
    for k in range(1, rounds + 1):
        if stop.is_set():
            break
        sent += runner.step(k)
        deadline = time.monotonic() + 10
        while collector.stats.received < sent and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.01)
    for g, message in rollout(region, datetime.now(UTC) - timedelta(hours=ROLLOUT_H)):
        runner.publishers[g].publish(message)
    last = len(region.gateways) - 1
    for seq, name in enumerate(("outbox_budget_reached", "messages_expired"), start=1):
        runner.publishers[last].publish(
            P.alert(
                DEMO_PREFIX,
                region.gateways[last].site,
                region.gateways[last].gateway,
                name=name,
                at=datetime.now(UTC) - timedelta(hours=seq),
                seq=seq,
            )
        )
    heartbeats(runner, region)  # alive now, before the UI opens
    runner.wait_acked(60)
    # Open the UI only once the collector has written what it got (bounded wait).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stop.is_set():
        st = collector.stats
        if st.received >= sent and st.written >= st.received:
            break
        time.sleep(0.05)


def heartbeats(runner: RegionRunner, region: Region) -> None:
    """Every simulated gateway reports itself online now."""
    now = datetime.now(UTC)
    for g, gw in enumerate(region.gateways):
        runner.publishers[g].publish(
            P.status(
                DEMO_PREFIX,
                gw.site,
                gw.gateway,
                state="online",
                session=gw.session,
                since=region.start,
                ward=gw.ward,
                heartbeat_at=now,
            )
        )


def keep_alive(runner: RegionRunner, region: Region, stop: threading.Event) -> None:
    """The simulated gateways stay alive: a heartbeat per gateway every 30 s until ``stop``."""
    while not stop.wait(30):
        heartbeats(runner, region)
