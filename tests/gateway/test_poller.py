"""The poller's view of a pump that answers but never gives usable state."""

from __future__ import annotations

import asyncio
import os
import pty
import tty

from drivers.ne1000.framing import encode_basic_reply
from gateway.config.model import PumpConfig
from gateway.poller import LinkPoller


class Sink:
    def __init__(self) -> None:
        self.lost: list[str] = []
        self.snapshots = 0

    async def on_snapshot(self, pump_id, snapshot) -> None:
        self.snapshots += 1

    async def on_identity(self, pump_id, identity) -> None:
        pass

    async def on_comm_lost(self, pump_id, at, reason) -> None:
        self.lost.append(reason)

    async def on_comm_restored(self, pump_id, at) -> None:
        pass


async def test_pump_that_refuses_every_query_is_reported_lost_not_online(no_leaked_fds_or_threads):
    """`?NA` to everything: the link is fine but no state -- after comm_lost_after_s it is lost."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    loop = asyncio.get_running_loop()
    buffer = bytearray()

    def answer() -> None:  # a real pty: every request (up to CR) gets "command not applicable"
        buffer.extend(os.read(master, 1024))
        while b"\r" in buffer:
            del buffer[: buffer.index(b"\r") + 1]
            os.write(master, encode_basic_reply("00S?NA"))

    loop.add_reader(master, answer)
    pump = PumpConfig(
        id="bed09", protocol="ne1000", poll_interval_s=0.2, request_timeout_s=0.3, comm_lost_after_s=1.0,
        link={"type": "serial", "url": path},
    )
    sink = Sink()
    poller = LinkPoller("serial:" + path, [pump], sink)
    task = asyncio.create_task(poller.run())
    try:
        async with asyncio.timeout(10):
            while not sink.lost:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)
    assert sink.snapshots == 0
    assert sink.lost == [sink.lost[0]] and "refuses" in sink.lost[0] and "NA" in sink.lost[0]
