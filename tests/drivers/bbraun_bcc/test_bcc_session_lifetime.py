"""A rack reconnect must release the old link: sessions die with their links."""

from __future__ import annotations

import gc
import weakref
from decimal import Decimal

from drivers.bbraun_bcc.client import BccDriver, rack_address
from drivers.transport import open_tcp
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump


async def test_a_thousand_dropped_rack_sessions_and_their_links_are_all_collected(no_leaked_fds_or_threads):
    rack = BccRack()
    rack.insert(
        1,
        1,
        SimulatedPump(
            DeviceIdentity("B. Braun", "688F030006", "1", "688N030003"),
            program=Program(Decimal("5"), Decimal("50")),
            running=True,
        ),
    )
    links: list[weakref.ref] = []
    sessions: list[weakref.ref] = []
    async with BccRackServer(rack) as server:
        for i in range(1000):
            link = await open_tcp("127.0.0.1", server.port, name=f"rack-{i}")
            driver = BccDriver(link, pump_id="p", address=rack_address(1, 1))
            driver.session.min_gap_s = 0.0
            if i % 100 == 0:  # some sessions really talked to the rack (bed ID, image, decoder state)
                snapshot = await driver.poll()
                assert snapshot.channels[0].rate is not None
            links.append(weakref.ref(link))
            sessions.append(weakref.ref(driver.session))
            await link.close()
            del link, driver
    gc.collect()
    assert sum(ref() is not None for ref in sessions) == 0
    assert sum(ref() is not None for ref in links) == 0
