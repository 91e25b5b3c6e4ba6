"""conformance = "report" (the default): the ACK answers for the commit alone; the checker's
findings are logged and counted after it, from a bounded queue; a message the queue cannot
take is counted and logged as unchecked, never lost silently."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3

from structlog.testing import capture_logs

from common.pcd.parse import parse_message
from gateway.config.load import load_config_text
from gateway.daemon import build_daemon
from gateway.log import get_logger
from gateway.sources.conformance import ConformanceReporter
from simulators.ehr import EhrReceiver
from simulators.vendor_server import messages
from simulators.vendor_server.client import VendorServer
from simulators.vendor_server.messages import VERDICT_PROGRAMS
from tests.gateway.sources.conftest import running_gateway, source_config_text

P = VERDICT_PROGRAMS["within_limits"]
BAD_OBX1 = (b"OBX|2|", b"OBX|7|")  # OBX-1 must run 1..n: an error finding, the message still usable


def _bad(control_id: str) -> bytes:
    return messages.pcd01(P, control_id).replace(*BAD_OBX1, 1)


async def test_report_mode_accepts_a_message_with_errors_and_logs_its_rules_after_the_ack(tmp_path):
    async with running_gateway(tmp_path) as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        with capture_logs() as logs:
            answer = await sim.send(_bad("RPT-1"), "RPT-1")
            async with asyncio.timeout(10):
                await gw.handler.conformance.drain()
        await sim.close()
        assert answer.codes == ["CA"]
        with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
            assert db.execute("SELECT count(*) FROM inbound_receipts WHERE control_id='RPT-1'").fetchone() == (1,)
        events = [e["event"] for e in logs]
        accepted = events.index("inbound message accepted")
        found = events.index("inbound message has conformance findings")
        assert accepted < found  # judged after the commit the ACK answers for
        info = logs[found]
        assert info["log_level"] == "info" and "OBX-1" in info["rules"] and info["control_id"] == "RPT-1"
        # the finding texts quote the sender's values: DEBUG only
        assert {e["log_level"] for e in logs if e["event"] == "conformance finding"} == {"debug"}
        counters = gw.handler.counters
        assert (counters["conformance_checked"], counters["with_findings"], counters["conformance_unchecked"]) == (
            1,
            1,
            0,
        )


def _reporter(**bounds) -> tuple[ConformanceReporter, dict[str, int]]:
    counters: dict[str, int] = {}
    return ConformanceReporter(get_logger("pumpgw.source", source="t"), counters, **bounds), counters


async def test_a_full_queue_counts_and_warns_instead_of_dropping_silently():
    reporter, counters = _reporter(max_messages=2)
    with capture_logs() as logs:
        taken = [reporter.submit(parse_message(_bad(f"Q-{i}")), f"Q-{i}", "pcd01") for i in range(3)]
        task = asyncio.get_running_loop().create_task(reporter.run())
        async with asyncio.timeout(10):
            await reporter.drain()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert taken == [True, True, False]
    assert (counters["conformance_checked"], counters["conformance_unchecked"]) == (2, 1)
    [warning] = [e for e in logs if e["event"] == "inbound message(s) not checked for conformance"]
    assert (warning["log_level"], warning["control_id"], warning["reason"]) == ("warning", "Q-2", "queue full")
    assert [e["control_id"] for e in logs if e["event"] == "inbound message has conformance findings"] == [
        "Q-0",
        "Q-1",
    ]


async def test_the_queue_is_bounded_by_bytes_too():
    reporter, counters = _reporter(max_bytes=3000)
    raw = _bad("B-1")
    assert 1500 < len(raw) <= 3000
    assert reporter.submit(parse_message(raw), "B-1", "pcd01")
    assert not reporter.submit(parse_message(raw), "B-2", "pcd01")
    assert counters["conformance_unchecked"] == 1


async def test_messages_still_queued_when_the_source_stops_are_counted_as_unchecked():
    reporter, counters = _reporter()
    with capture_logs() as logs:
        task = asyncio.get_running_loop().create_task(reporter.run())
        await asyncio.sleep(0)
        for i in range(3):
            reporter.submit(parse_message(_bad(f"S-{i}")), f"S-{i}", "pcd01")
        task.cancel()  # before the reporter's next turn
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert counters["conformance_checked"] + counters["conformance_unchecked"] == 3
    assert counters["conformance_unchecked"] >= 1
    assert any(e.get("reason") == "source stopping" and e["log_level"] == "warning" for e in logs)


async def test_a_listener_that_cannot_bind_is_reported_with_its_own_error_not_a_task_group(tmp_path):
    """The reporter runs in the listener's task group; the supervisor still sees the OSError."""
    occupied = socket.socket()
    occupied.bind(("127.0.0.1", 0))
    occupied.listen()
    ehr = EhrReceiver(port=0)
    ehr_port = await ehr.start()
    text = source_config_text(tmp_path, ehr_port=ehr_port, port=occupied.getsockname()[1])
    daemon = build_daemon(load_config_text(text, base_dir=tmp_path))
    task = asyncio.get_running_loop().create_task(daemon.supervisor.run(install_signal_handlers=False))
    try:
        service = daemon.supervisor.services["source vendor"]
        async with asyncio.timeout(10):
            while not service.last_crash:
                await asyncio.sleep(0.02)
        assert service.last_crash.startswith("OSError"), service.last_crash
    finally:
        daemon.supervisor.request_stop()
        async with asyncio.timeout(15):
            await task
        await ehr.stop()
        occupied.close()


async def test_refuse_errors_judges_before_the_commit_and_queues_nothing(tmp_path):
    async with running_gateway(tmp_path, source='conformance = "refuse_errors"') as gw:
        sim = VendorServer("127.0.0.1", gw.port)
        warning_only = messages.pcd01(P, "RE-1").replace(b"|Dopamine|", b"| Dopamine|")  # STRAY-BLANK
        with capture_logs() as logs:
            answer = await sim.send(warning_only, "RE-1")
        await sim.close()
        assert answer.codes == ["CA"]
        events = [e["event"] for e in logs]
        assert events.index("inbound message has conformance findings") < events.index("inbound message accepted")
        assert gw.handler.counters["conformance_checked"] == 0 and gw.handler.conformance.waiting == 0
