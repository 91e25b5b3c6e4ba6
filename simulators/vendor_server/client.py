"""The vendor server's MLLP client: sends each message until acknowledged, with fault modes.

A real pump server keeps a message until it is acknowledged and resends it (same bytes, same
MSH-10) after a timeout or a broken connection; so does this one. Fault modes (per step or
for a whole run) reproduce what the gateway must survive:

* ``duplicate``: the message is sent twice in a row (a resend whose first copy was acked);
* ``reused_id``: after the message, *another* message is sent under the same MSH-10;
* ``malformed``: segments broken (the MDS row loses its OBX-18, a number is not a number);
* ``slow``: the frame trickles in small pieces with pauses;
* ``disconnect``: half the frame is written, the connection dropped, then the whole message
  is resent on a new connection.

Script steps (``VendorStep``) are run in order; ``run_verdicts`` is the built-in script that
sends the twelve verdict programs (messages.VERDICT_PROGRAMS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field, replace

from common.mllp.framing import MllpDecoder, frame
from simulators.vendor_server import messages
from simulators.vendor_server.messages import Program

log = logging.getLogger("pumpgw.sim.vendor")
FAULTS = ("duplicate", "reused_id", "malformed", "slow", "disconnect")


@dataclass
class Answer:
    control_id: str
    codes: list[str]  # MSA-1 of every ACK received for the message (CA, AA, AE, AR ...)
    acks: list[bytes] = field(default_factory=list)


def malform(raw: bytes) -> bytes:
    """The MDS row loses its device identity (OBX-18) and a number is no number."""
    lines = raw.decode().split("\r")
    out = []
    for line in lines:
        if "|1.0.0.0|" in line:
            line = line.rsplit("|", 1)[0]
        elif "MDC_FLOW_FLUID_PUMP^" in line:
            parts = line.split("|")
            parts[5] = "fifteen"
            line = "|".join(parts)
        out.append(line)
    return "\r".join(out).encode()


def msa_code(ack: bytes) -> str:
    for seg in ack.decode("utf-8", "replace").replace("\n", "\r").split("\r"):
        if seg.startswith("MSA|"):
            return seg.split("|")[1]
    return ""


class VendorServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        ack_timeout_s: float = 10.0,
        acks_per_message: int = 1,
        slow_chunk: int = 16,
        slow_pause_s: float = 0.05,
        id_prefix: str = "VS",
    ) -> None:
        self.host, self.port = host, port
        self.ssl_context, self.server_hostname = ssl_context, server_hostname
        self.ack_timeout_s = ack_timeout_s
        self.acks_per_message = acks_per_message  # enhanced mode with MSH-15 AL, MSH-16 NE: one (CA)
        self.slow_chunk, self.slow_pause_s = slow_chunk, slow_pause_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = MllpDecoder()
        self._counter = 0
        self.id_prefix = id_prefix  # MSH-10 = prefix + counter (a restarted server takes a new prefix)
        self.answers: list[Answer] = []

    def next_id(self) -> str:
        self._counter += 1
        return f"{self.id_prefix}{self._counter:08d}"

    async def connect(self) -> None:
        await self.close()
        self._reader, self._writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self.ssl_context,
            server_hostname=self.server_hostname if self.ssl_context else None,
        )
        self._decoder = MllpDecoder()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def send(self, raw: bytes, control_id: str, *, fault: str | None = None, attempts: int = 20) -> Answer:
        """Send until acknowledged (resend on timeout or broken connection), applying ``fault``."""
        if fault == "malformed":
            raw = malform(raw)
        answer = Answer(control_id, [])
        for attempt in range(attempts):
            try:
                if self._writer is None:
                    await self.connect()
                if fault == "disconnect" and attempt == 0:
                    assert self._writer is not None
                    wire = frame(raw)
                    self._writer.write(wire[: len(wire) // 2])
                    await self._writer.drain()
                    await self.close()
                    continue
                await self._write(frame(raw), slow=fault == "slow")
                acks = await self._acks()
                answer.acks += acks
                answer.codes += [msa_code(a) for a in acks]
                break
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ConnectionError) as exc:
                log.info("vendor server: no ACK for %s (%s); resending", control_id, type(exc).__name__)
                await self.close()
                await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        else:
            raise ConnectionError(f"no acknowledgement for {control_id} after {attempts} attempts")
        self.answers.append(answer)
        if fault == "duplicate":
            again = await self.send(raw, control_id)
            answer.codes += again.codes
            answer.acks += again.acks
        return answer

    async def _write(self, wire: bytes, *, slow: bool) -> None:
        assert self._writer is not None
        if not slow:
            self._writer.write(wire)
            await self._writer.drain()
            return
        for i in range(0, len(wire), self.slow_chunk):
            self._writer.write(wire[i : i + self.slow_chunk])
            await self._writer.drain()
            await asyncio.sleep(self.slow_pause_s)

    async def _acks(self) -> list[bytes]:
        assert self._reader is not None
        acks: list[bytes] = []
        async with asyncio.timeout(self.ack_timeout_s):
            while len(acks) < self.acks_per_message:
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionError("connection closed before the acknowledgement")
                acks += [item for item in self._decoder.feed(data) if isinstance(item, bytes)]
        return acks

    # -- scripts --------------------------------------------------------------------------
    async def pcd01(self, program: Program, *, fault: str | None = None, processing_id: str = "P") -> Answer:
        cid = self.next_id()
        answer = await self.send(messages.pcd01(program, cid, processing_id=processing_id), cid, fault=fault)
        if fault == "reused_id":
            other = replace(program, rate_ml_h=str(float(program.rate_ml_h or 1) + 1))
            second = await self.send(messages.pcd01(other, cid), cid)
            answer.codes += second.codes
            answer.acks += second.acks
        return answer

    async def pcd10(self, program: Program, event: str = "start", *, fault: str | None = None) -> Answer:
        cid = self.next_id()
        return await self.send(messages.pcd10(program, cid, event=event), cid, fault=fault)

    async def pcd04(self, program: Program, alert_id: str, phase: str = "start", *, fault: str | None = None) -> Answer:
        cid = self.next_id()
        return await self.send(messages.pcd04(program, cid, alert_id=alert_id, phase=phase), cid, fault=fault)

    async def run_verdicts(self, *, faults: tuple[str, ...] = ()) -> list[Answer]:
        """Every verdict program once as PCD-01 (fault i applied to program i, cycling)."""
        out = []
        for i, program in enumerate(messages.VERDICT_PROGRAMS.values()):
            fault = faults[i % len(faults)] if faults else None
            out.append(await self.pcd01(program, fault=fault))
        return out
