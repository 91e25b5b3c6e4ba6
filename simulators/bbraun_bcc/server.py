"""The rack on a TCP port of 127.0.0.1 (never all interfaces): one task per connection.

Each connection task reads requests and writes the rack's frames in order, waiting out each
frame's fault delay. :meth:`BccRackServer.drop_connections` is the disconnect fault: every
client sees the connection close and must reconnect. Every task is owned and awaited by
:meth:`stop`.
"""

from __future__ import annotations

import asyncio
import contextlib

from simulators.bbraun_bcc.rack import BccRack

LOOPBACK = "127.0.0.1"


class BccRackServer:
    def __init__(self, rack: BccRack, *, host: str = LOOPBACK, port: int = 0) -> None:
        self.rack = rack
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.connections_accepted = 0
        self._stopping = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.connections_accepted += 1
        connection = self.rack.connection()
        loop = asyncio.get_running_loop()
        ready_at = 0.0
        try:
            while data := await reader.read(4096):
                for item in connection.receive(data):
                    ready_at = max(ready_at, loop.time()) + item.delay_s
                    wait = ready_at - loop.time()
                    if wait > 0:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(wait):  # a slow reply, cut short by stop()
                                await self._stopping.wait()
                    if self._stopping.is_set():
                        return
                    writer.write(item.data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away: nothing to answer
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def suspend(self) -> None:
        """The rack goes away: stop listening and drop every client (until :meth:`resume`)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.drop_connections()

    async def resume(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)

    def drop_connections(self) -> int:
        """Disconnect fault: close every client connection (the rack stays up)."""
        writers = list(self._connections.values())
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._stopping.set()
        tasks = list(self._connections)
        self.drop_connections()  # each handler sees end of stream and returns
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> BccRackServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
