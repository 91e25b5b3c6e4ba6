"""A gateway-side process for the Last Will test: connects, publishes, prints READY, runs on.

Run as ``python gateway_proc.py HOST PORT [HEARTBEAT_S [STALE_AFTER_INTERVALS]]``; the test
SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import sys

from gateway.config.model import MqttConfig
from gateway.mqtt import MqttPublisher
from tests.gateway.mqtt.conftest import snapshot
from tests.gateway.mqtt.scratch_outbox import scratch_outbox


async def main(host: str, port: int, heartbeat_s: float = 30.0, stale_after: float = 3) -> None:
    cfg = MqttConfig(
        enabled=True,
        host=host,
        port=port,
        keepalive_s=60,
        heartbeat_interval_s=heartbeat_s,
        stale_after_intervals=int(stale_after),
    )
    pub = MqttPublisher(cfg, site="site1", gateway_id="gw1", outbox=scratch_outbox(), version="9.9", config_hash="beef")
    pub.update_state(snapshot())
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pub.run())
        await pub.wait_online()
        print("READY", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:5])))
