"""The simulated EHR / alert manager: an MLLP server that logs and answers per mode.

Many connections, many messages per connection; each message is recorded in
``received`` and, if a log path is given, as one JSON line (time, peer, MSH-10, message
type, answer, checker findings, raw). Binds to loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from common.mllp.errors import MllpError
from common.mllp.framing import MllpDecoder, frame
from simulators.ehr.modes import Mode, parse_mode

log = logging.getLogger("pumpgw.sim.ehr")

Checker = Callable[[bytes], list[str]]


@dataclass
class Received:
    index: int  # 1-based over all connections
    time: float
    peer: str
    control_id: str
    message_type: str
    answer: str  # AA, CA, AE, ... or noack / wrong-msa2 / close-mid-ack
    raw: bytes
    findings: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "time": datetime.fromtimestamp(self.time, UTC).isoformat(),
                "peer": self.peer,
                "control_id": self.control_id,
                "message_type": self.message_type,
                "answer": self.answer,
                "findings": self.findings,
                "raw": self.raw.decode("utf-8", errors="replace"),
            }
        )


def _msh_fields(raw: bytes) -> list[str]:
    end = raw.find(b"\r")
    head = (raw if end < 0 else raw[:end]).decode("utf-8", errors="replace")
    if not head.startswith("MSH") or len(head) < 4:
        return []
    return [f.strip() for f in head.split(head[3])]


def build_ack(raw: bytes, code: str, *, control_id: str | None = None, text: str = "", n: int = 0) -> bytes:
    """An HL7 ACK answering ``raw`` (MSA-2 = its MSH-10 unless ``control_id`` is given)."""
    f = _msh_fields(raw)
    get = lambda i: f[i] if len(f) > i else ""  # noqa: E731
    trigger = get(8).split("^")[1] if "^" in get(8) else ""
    cid = get(9) if control_id is None else control_id
    ts = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    segs = [
        f"MSH|^~\\&|EHR-SIM|PUMPGW-TEST|{get(2)}|{get(3)}|{ts}||ACK^{trigger}^ACK|ACK{n}|P|2.6",
        f"MSA|{code}|{cid}",
    ]
    if code in ("AE", "CE", "AR", "CR"):
        segs.append(f"ERR|||207^Application internal error^HL70357|E||||{text or 'simulated ' + code}")
    return ("\r".join(segs) + "\r").encode()


class EhrReceiver:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: Path | None = None,
        mode: Mode | str = "aa",
        schedule: list[tuple[float, Mode]] | None = None,
        checker: Checker | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = Path(log_path) if log_path else None
        self.mode = parse_mode(mode) if isinstance(mode, str) else mode
        self.schedule = list(schedule or [])
        self.checker = checker
        self.ssl_context = ssl_context
        self.received: list[Received] = []
        self.connections = 0  # accepted so far
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._control: asyncio.Task | None = None
        self._log_file: TextIO | None = None
        self._count = 0
        self._going_down = asyncio.Event()

    @property
    def up(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        """Bind (and stay down first if the mode says down:T); returns the bound port."""
        if self.log_path is not None:
            self._log_file = self.log_path.open("a", encoding="utf-8")
        await self._listen()
        first_down = self.mode.down_s
        if first_down or self.schedule:
            self._control = asyncio.get_running_loop().create_task(
                self._run_schedule(first_down), name=f"ehr-sim-schedule-{self.port}"
            )
        return self.port

    async def stop(self) -> None:
        if self._control is not None:
            self._control.cancel()
            await asyncio.gather(self._control, return_exceptions=True)
            self._control = None
        await self.go_down()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def set_mode(self, mode: Mode | str) -> None:
        self.mode = parse_mode(mode) if isinstance(mode, str) else mode

    async def go_down(self) -> None:
        """Stop listening and drop every connection (an EHR outage)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._going_down.set()  # wakes handlers in a slow answer
        for writer in list(self._writers):
            writer.transport.abort()  # wakes handlers waiting to read
        await asyncio.gather(*list(self._handlers), return_exceptions=True)

    async def come_up(self) -> None:
        if self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        self._going_down = asyncio.Event()
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=self.ssl_context, reuse_address=True, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _run_schedule(self, first_down: float) -> None:
        t0 = time.monotonic()
        if first_down:
            await self._outage(first_down)
        for at, mode in self.schedule:
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            log.info("ehr-sim: switching to mode %s", mode.spec)
            self.mode = mode
            if mode.down_s:
                await self._outage(mode.down_s)

    async def _outage(self, seconds: float) -> None:
        log.info("ehr-sim: down for %.1f s", seconds)
        await self.go_down()
        await asyncio.sleep(seconds)
        await self.come_up()
        log.info("ehr-sim: up on port %d", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs every connection handler as a task
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        peer = "{}:{}".format(*writer.get_extra_info("peername")[:2])
        decoder = MllpDecoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for item in decoder.feed(data):
                    if isinstance(item, MllpError):
                        log.warning("ehr-sim: from %s: %s", peer, item)
                        continue
                    if not await self._answer(item, peer, writer):
                        return
        except (ConnectionError, OSError):
            return
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _answer(self, raw: bytes, peer: str, writer: asyncio.StreamWriter) -> bool:
        """Record and answer one message; False closes the connection."""
        self._count += 1
        n, mode = self._count, self.mode
        text = raw.decode("utf-8", errors="replace")
        action = mode.action_for(n, text)
        f = _msh_fields(raw)
        rec = Received(
            index=n,
            time=time.time(),
            peer=peer,
            control_id=f[9] if len(f) > 9 else "",
            message_type=f[8] if len(f) > 8 else "",
            answer=action.upper(),
            raw=raw,
        )
        if self.checker is not None:
            try:
                rec.findings = list(self.checker(raw))
            except Exception as exc:  # a checker bug must not stop the receiver
                rec.findings = [f"checker failed: {exc!r}"]
        self.received.append(rec)
        if self._log_file is not None:
            self._log_file.write(rec.as_json() + "\n")
            self._log_file.flush()
        if mode.slow_s:
            going_down = self._going_down
            try:
                async with asyncio.timeout(mode.slow_s):
                    await going_down.wait()
                return False  # the receiver went down during the delay
            except TimeoutError:
                pass
        if action == "noack":
            return True
        if action == "wrong-msa2":
            writer.write(frame(build_ack(raw, mode.base, control_id=rec.control_id + "-WRONG", n=n)))
        elif action == "close-mid-ack":
            block = frame(build_ack(raw, mode.base, n=n))
            writer.write(block[: len(block) // 2])
            await writer.drain()
            return False
        else:
            writer.write(frame(build_ack(raw, action.upper(), n=n, text=f"simulated {action.upper()} for message {n}")))
        await writer.drain()
        return True
