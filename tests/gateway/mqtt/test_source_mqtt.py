"""Pumps reported by a vendor server appear on MQTT like polled pumps: every verdict kind in
their retained state, and no patient data (the PID the server sent) anywhere on the broker."""

from __future__ import annotations

import asyncio
import json

from simulators.vendor_server.client import VendorServer
from simulators.vendor_server.messages import VERDICT_PROGRAMS
from tests.gateway.sources.conftest import running_gateway

BASE = "pumpgw/v1/test-site/gw-test"


async def test_every_verdict_kind_is_in_the_mqtt_state_of_source_pumps_without_patient_data(
    tmp_path, broker, subscribe
):
    dashboard = await asyncio.to_thread(subscribe, broker, [f"{BASE}/#"])
    mqtt = f"""
[mqtt]
enabled = true
host = "{broker.host}"
port = {broker.port}
retry = {{ initial_backoff_s = 0.1, max_backoff_s = 0.5 }}
"""
    async with running_gateway(tmp_path, extra=mqtt) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        await sim.run_verdicts()
        await sim.close()

        def all_states_in(_t, _p, _r) -> bool:
            pumps = {t.split("/")[-2] for t, p, _ in dashboard.history if t.endswith("/state") and b"verdicts" in p}
            return len(pumps) >= 12

        await asyncio.to_thread(dashboard.wait_for, all_states_in, 20)
    kinds: dict[str, set[str]] = {}
    for topic, payload, _ in dashboard.history:
        assert b"MRN20" not in payload and b"Sim" not in payload, topic
        if topic.endswith("/state"):
            state = json.loads(payload)
            for v in state.get("verdicts") or []:
                kinds.setdefault(topic.split("/")[-2], set()).update(x["kind"] for x in v.get("verdicts", []))
    for n, kind in enumerate(VERDICT_PROGRAMS, 1):
        assert kind in kinds.get(f"vs-{n:02d}", set()), (kind, kinds.get(f"vs-{n:02d}"))
