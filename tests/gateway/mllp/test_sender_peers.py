"""The sender against receivers that misbehave the way real ones do, and after an outage."""

from __future__ import annotations

import asyncio

from common.mllp.framing import MllpDecoder, frame
from gateway.mllp.sender import ALARM_PROBE_MAX_S, MllpSender
from gateway.outbox import Outbox
from simulators.ehr import EhrReceiver
from simulators.ehr.receiver import build_ack

from .test_sender import accepted, fill, running, until

DEFAULTS = dict(ack_timeout_s=2.0, connect_timeout_s=1.0, initial_backoff_s=1.0, max_backoff_s=60.0)


async def test_alarm_lane_probes_a_lost_receiver_with_a_short_capped_backoff_and_delivers_when_it_returns(tmp_path):
    outbox = Outbox.open(tmp_path / "o.db")
    rx = EhrReceiver()
    port = await rx.start()
    await rx.go_down()  # an outage: the port refuses connections
    data = MllpSender(outbox, lane="ehr", host="127.0.0.1", port=port, **DEFAULTS)
    alarms = MllpSender(outbox, lane="ehr.alarms", host="127.0.0.1", port=port, **DEFAULTS)
    assert (data.initial_backoff_s, data.max_backoff_s) == (1.0, 60.0)  # data lanes keep their policy
    assert alarms.max_backoff_s == ALARM_PROBE_MAX_S <= 2.0
    await fill(outbox, "ehr.alarms", 1, prefix="A", kind="pcd04")
    async with running(alarms):
        await until(lambda: len(alarms.backoffs) >= 8)  # with 1 s doubling this would wait up to 128 s
        assert max(alarms.backoffs) <= ALARM_PROBE_MAX_S
        await rx.come_up()
        await until(lambda: outbox.stats()["ehr.alarms"].delivered == 1)
    assert accepted(rx) == ["A00000"]
    await rx.stop()
    outbox.close()


class HostileReceiver:
    """A receiver that ACKs every message twice, or floods whitespace before each ACK."""

    def __init__(self, *, double_ack: bool = False, whitespace: int = 0) -> None:
        self.double_ack, self.whitespace = double_ack, whitespace
        self.received: list[str] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        decoder = MllpDecoder()
        try:
            while data := await reader.read(65536):
                for item in decoder.feed(data):
                    if isinstance(item, Exception):
                        continue
                    self.received.append(item.split(b"\r")[0].split(b"|")[9].decode())
                    if self.whitespace:
                        writer.write(b" " * self.whitespace)
                    ack = frame(build_ack(item, "AA"))
                    writer.write(ack + ack if self.double_ack else ack)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def test_a_receiver_that_acks_twice_gets_every_message_exactly_once(tmp_path):
    outbox = Outbox.open(tmp_path / "o.db")
    rx = HostileReceiver(double_ack=True)
    port = await rx.start()
    cids = await fill(outbox, "doc", 50)
    sender = MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **DEFAULTS)
    async with running(sender):
        await until(lambda: outbox.stats()["doc"].delivered == 50)
    assert rx.received == cids  # nothing resent
    await rx.stop()
    outbox.close()


async def test_a_whitespace_flooding_receiver_costs_one_warning_per_connection(tmp_path, daemon_logs):
    outbox = Outbox.open(tmp_path / "o.db")
    rx = HostileReceiver(whitespace=300_000)
    port = await rx.start()
    await fill(outbox, "doc", 5)
    sender = MllpSender(outbox, lane="doc", host="127.0.0.1", port=port, **DEFAULTS)
    async with running(sender):
        await until(lambda: outbox.stats()["doc"].delivered == 5)
    whitespace = [e for e in daemon_logs if "whitespace" in e["event"]]
    assert len(whitespace) > 5  # the flood was seen in many pieces ...
    assert [e["log_level"] for e in whitespace].count("warning") == 1  # ... and warned about once
    await rx.stop()
    outbox.close()
