"""What a B. Braun rack (BCC protocol) cannot tell the patient record, pinned.

Delivery state, alarms and the serial number travel in BCC parameters whose meaning is not
publicly documented (docs/hl7.md, "What B. Braun pumps cannot tell"): the driver reports the
rate only, with delivery state ``unknown``. So an occlusion alarm and a titration at the pump
produce **no** PCD-04 and **no** PCD-10 delivery event; the new rate reaches the record only
through PCD-01. If a future driver learns these parameters, this test must change with it.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from common.pcd.parse import parse_message
from gateway.config import load_config_text
from gateway.hl7 import ControlIdGenerator
from gateway.outbox import Outbox
from gateway.pipeline import Pipeline
from tests.drivers.bbraun_bcc.test_bcc_driver import bench

CONFIG = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA03"
[outbox]
path = "unused.sqlite"
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = 2575
messages = ["pcd01", "pcd10", "pcd04"]
[[pumps]]
id = "p1s1"
protocol = "bbraun-bcc"
link = { type = "tcp", host = "127.0.0.1", port = 1, pillar = 1, slot = 1 }
"""


async def test_a_bbraun_alarm_and_titration_never_reach_pcd04_or_pcd10_only_the_rate_in_pcd01(tmp_path):
    outbox = Outbox.open(tmp_path / "o.sqlite")
    pipeline = Pipeline(
        load_config_text(CONFIG), outbox, control_ids=ControlIdGenerator("001BC50C0000AA03"), pcd01_interval_s=0
    )
    async with bench({(1, 1): "20"}) as b:
        driver = b.drivers[(1, 1)]
        await pipeline.on_snapshot("p1s1", await driver.poll())
        pump = b.rack.slots[(1, 1)].pump
        pump.titrate(rate_ml_h=Decimal("25"))
        pump.set_alarm("occlusion")  # stops the pump at the rack
        b.clock.now += 10
        await pipeline.on_snapshot("p1s1", await driver.poll())
    outbox.close()
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        rows = [(r[0], bytes(r[1])) for r in db.execute("SELECT kind, payload FROM messages ORDER BY id")]
    assert [kind for kind, _ in rows] == ["pcd01", "pcd01"]  # no pcd04, no pcd10
    rates = []
    for _, payload in rows:
        obx = {s.component(3, 2): s for s in parse_message(payload).named("OBX")}
        assert "MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS" not in obx  # state unknown: not claimed
        rates.append(obx["MDC_FLOW_FLUID_PUMP"].field(5))
    assert rates[0] != rates[1]  # the titration is visible only as a changed PCD-01 rate
