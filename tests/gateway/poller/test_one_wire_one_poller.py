"""Two spellings of one wire give one poller and one connection (issue 19: the configuration
accepted a shared line that the poller then opened twice).

Real parts only: the configuration goes through the real loader, the daemon is built by
``build_daemon`` and run by its supervisor; the wires are real loopback TCP servers -- a
serial device server port (``socket://``) with two NE-1000 pumps on its multidrop line, and
a SpaceCom rack with two pumps in two slots. Each server counts the connections it accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

from gateway.config import load_config_text
from gateway.daemon import build_daemon
from simulators.bbraun_bcc import BccRack, BccRackServer
from simulators.ne1000.frontend import Ne1000Line
from simulators.pump_model import DeviceIdentity, Program, SimulatedPump
from tests.ports import free_port


def pump(manufacturer: str, model: str, serial: str, firmware: str) -> SimulatedPump:
    return SimulatedPump(
        DeviceIdentity(manufacturer, model, serial, firmware),
        program=Program(Decimal("5"), Decimal("50")),
        running=True,
    )


class SerialDeviceServer:
    """A raw-TCP serial device server port (what ``socket://HOST:PORT`` reaches) with an
    NE-1000 multidrop line behind it; counts the TCP connections it accepts."""

    def __init__(self, line: Ne1000Line) -> None:
        self.line = line
        self.connections_accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> SerialDeviceServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections_accepted += 1
        try:
            while data := await reader.read(4096):
                for item in self.line.receive(data):
                    writer.write(item.data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def config_text(tmp_path: Path, serial_port: int, rack_port: int) -> str:
    return f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA19"
[outbox]
path = "{tmp_path / "outbox.sqlite"}"
[health]
enabled = false
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = {free_port()}
messages = ["pcd01", "pcd10", "pcd04"]

[[pumps]]
id = "bed01"
protocol = "ne1000"
poll_interval_s = 0.2
link = {{ type = "serial", url = "socket://LocalHost:{serial_port}", baudrate = 19200, address = 0 }}
[[pumps]]
id = "bed02"
protocol = "ne1000"
poll_interval_s = 0.2
link = {{ type = "serial", url = "SOCKET://localhost:0{serial_port}?logging=debug", baudrate = 19200, address = 1 }}

[[pumps]]
id = "slot1"
protocol = "bbraun-bcc"
poll_interval_s = 0.2
link = {{ type = "tcp", host = "localhost", port = {rack_port}, pillar = 1, slot = 1 }}
[[pumps]]
id = "slot2"
protocol = "bbraun-bcc"
poll_interval_s = 0.2
link = {{ type = "tcp", host = "LOCALHOST", port = {rack_port}, pillar = 1, slot = 2 }}
"""


@contextlib.asynccontextmanager
async def wires() -> AsyncIterator[tuple[SerialDeviceServer, BccRackServer]]:
    line = Ne1000Line(
        {
            0: pump("New Era Pump Systems", "NE-1000", "A", "3.928"),
            1: pump("New Era Pump Systems", "NE-1000", "B", "3.928"),
        }
    )
    rack = BccRack()
    for slot in (1, 2):
        rack.insert(1, slot, pump("B. Braun", "688F030006", str(slot), "688N030003"))
    async with SerialDeviceServer(line) as serial_server, BccRackServer(rack) as rack_server:
        yield serial_server, rack_server


async def test_two_spellings_of_one_wire_are_polled_by_one_poller_over_one_connection(tmp_path):
    async with wires() as (serial_server, rack_server):
        config = load_config_text(config_text(tmp_path, serial_server.port, rack_server.port))
        daemon = build_daemon(config)
        runner = asyncio.create_task(daemon.supervisor.run(install_signal_handlers=False))
        try:
            async with asyncio.timeout(30):
                while not all(
                    state.last_poll_at is not None and state.failures == 0
                    for poller in daemon.pollers
                    for state in poller.pumps
                ) or any(poller.polls < 6 for poller in daemon.pollers):
                    await asyncio.sleep(0.05)
        finally:
            daemon.supervisor.request_stop()
            await asyncio.wait_for(runner, 30)
    assert sorted(sorted(s.config.id for s in poller.pumps) for poller in daemon.pollers) == [
        ["bed01", "bed02"],
        ["slot1", "slot2"],
    ]
    assert sorted(poller.key for poller in daemon.pollers) == [
        f"serial:socket://localhost:{serial_server.port}",
        f"tcp:localhost:{rack_server.port}",
    ]
    assert (serial_server.connections_accepted, rack_server.connections_accepted) == (1, 1)
    assert all(poller.reconnects == 0 for poller in daemon.pollers)
