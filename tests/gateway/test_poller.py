"""The poller's view of a pump that answers but never gives usable state."""

from __future__ import annotations

import asyncio
import os
import pty
import tty

from drivers.ne1000.framing import RequestDecoder, encode_basic_reply
from drivers.transport import open_serial
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

    async def on_identity_unreadable(self, pump_id, reason) -> None:
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
        id="bed09",
        protocol="ne1000",
        poll_interval_s=0.2,
        request_timeout_s=0.3,
        comm_lost_after_s=1.0,
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


class PtyPump:
    """An NE-1000 at address 0 played on a fresh pty per connection (the poller's opener).

    The first connection answers the status query with an alarm -- which acknowledges it at
    the pump (§0 rule 4) -- and then hangs up before any snapshot; later ones answer normally.
    """

    REPLIES = {"VER": "NE1000V3.928", "": "", "RAT": "15.4MH", "VOL": "250.0ML", "DIS": "I1.000W0.000ML"}

    def __init__(self) -> None:
        self.connections = 0
        self.fds: list[int] = []
        self.masters: list[int] = []

    async def open(self, pump: PumpConfig, name: str):
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.fds += [master, slave]
        self.masters.append(master)
        self.connections += 1
        first = self.connections == 1
        decoder = RequestDecoder()
        loop = asyncio.get_running_loop()
        alarmed = False

        def answer() -> None:
            nonlocal alarmed
            for request in decoder.feed(os.read(master, 1024)):
                command = request.text[1:]
                if first and command == "" and not alarmed:
                    alarmed = True
                    os.write(master, encode_basic_reply("00A?S"))
                elif first and command == "":
                    loop.remove_reader(master)
                    self.masters.remove(master)
                    self.fds.remove(master)
                    os.close(master)  # the adapter is unplugged: the slave reads EIO
                    return
                else:
                    os.write(master, encode_basic_reply("00S" + self.REPLIES[command]))

        loop.add_reader(master, answer)
        return await open_serial(os.ttyname(slave), name=name)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for master in self.masters:
            loop.remove_reader(master)
        for fd in self.fds:
            os.close(fd)


class SnapshotSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.alarms: list[list[str]] = []

    async def on_snapshot(self, pump_id, snapshot) -> None:
        await super().on_snapshot(pump_id, snapshot)
        self.alarms.append([a.code for a in snapshot.channels[0].alarms])


async def test_alarm_acknowledged_just_before_the_link_drops_is_carried_by_the_next_snapshot(
    no_leaked_fds_or_threads,
):
    pumps = PtyPump()
    pump = PumpConfig(
        id="bed03",
        protocol="ne1000",
        poll_interval_s=0.2,
        request_timeout_s=0.5,
        comm_lost_after_s=30.0,
        link={"type": "serial", "url": "/dev/ttyUSB9"},
    )
    sink = SnapshotSink()
    poller = LinkPoller(
        "serial:/dev/ttyUSB9", [pump], sink, opener=pumps.open, backoff_initial_s=0.01, backoff_max_s=0.05
    )
    task = asyncio.create_task(poller.run())
    try:
        async with asyncio.timeout(10):
            while not sink.alarms:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pumps.close()
    assert pumps.connections >= 2 and poller.reconnects >= 1
    assert sink.alarms[0] == ["A?S"]


async def test_link_where_every_pump_times_out_round_after_round_is_reconnected(no_leaked_fds_or_threads):
    """A half-open rack connection (rack rebooted behind NAT): open, but nothing ever answers."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(1024):
            pass  # requests arrive; no reply ever leaves
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pumps = [
        PumpConfig(
            id=f"rack-{slot}",
            protocol="bbraun-bcc",
            poll_interval_s=0.2,
            request_timeout_s=0.2,
            comm_lost_after_s=30.0,
            link={"type": "tcp", "host": "127.0.0.1", "port": port, "pillar": 1, "slot": slot},
        )
        for slot in (1, 2)
    ]
    poller = LinkPoller(f"tcp:127.0.0.1:{port}", pumps, Sink(), backoff_initial_s=0.01, backoff_max_s=0.05)
    task = asyncio.create_task(poller.run())
    try:
        async with asyncio.timeout(15):
            while len(connections) < 2:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()
    assert poller.reconnects >= 1 and poller.polls == 0
