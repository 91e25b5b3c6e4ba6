"""The EHR receiver simulator: mode syntax, JSON log, checker hook, schedule, CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from common.mllp.framing import MllpDecoder, frame
from gateway.mllp.ack import parse_ack
from simulators.ehr import EhrReceiver, ModeError, parse_mode, parse_schedule


def hl7(cid: str) -> bytes:
    return f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R40^ORU_R40|{cid}|P|2.6\rOBX|1|ST|x||v\r".encode()


def test_mode_syntax_selects_actions_by_number_and_pattern():
    mode = parse_mode("ca,ae:2,cr:/PUMP-7/,slow:0.5")
    assert mode.base == "CA" and mode.slow_s == 0.5
    assert [mode.action_for(n, t) for n, t in [(1, "x"), (2, "x"), (3, "PUMP-7"), (4, "y")]] == ["ca", "ae", "cr", "ca"]
    assert parse_mode("noack:/a,b/").rules[0].pattern.pattern == "a,b"


@pytest.mark.parametrize("spec", ["bogus", "ae:0", "slow:x", "ae:/(/", ""])
def test_bad_modes_are_refused_with_a_reason(spec):
    with pytest.raises(ModeError):
        parse_mode(spec)


def test_schedule_file_names_the_line_of_an_error(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("# outage drill\n0 aa\n5 down:2\n")
    assert [(t, m.down_s) for t, m in parse_schedule(path)] == [(0.0, 0.0), (5.0, 2.0)]
    path.write_text("0 aa\nsoon ar\n")
    with pytest.raises(ModeError, match=":2:"):
        parse_schedule(path)


async def exchange(port: int, messages: list[bytes]) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    dec, out = MllpDecoder(), []
    for m in messages:
        writer.write(frame(m))
        while len(out) < len(messages[: messages.index(m) + 1]):
            out += dec.feed(await reader.read(4096))
    writer.close()
    return out


async def test_many_connections_many_messages_logged_as_json_lines_with_checker_findings(tmp_path):
    log = tmp_path / "rx.jsonl"
    rx = EhrReceiver(log_path=log, mode=r"ae:/\|C\d3\|/", checker=lambda raw: ["OBX-8 empty"] if b"OBX" in raw else [])
    port = await rx.start()
    batches = [[hl7(f"C{c}{i}") for i in range(4)] for c in range(3)]
    acks = await asyncio.gather(*(exchange(port, b) for b in batches))
    await rx.stop()
    for batch, answers in zip(batches, acks):
        parsed = [parse_ack(a) for a in answers]
        assert [p.control_id for p in parsed] == [m.split(b"|")[9].decode() for m in batch]
        assert [p.code for p in parsed] == ["AA", "AA", "AA", "AE"]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 12 and rx.connections == 3
    assert {ln["message_type"] for ln in lines} == {"ORU^R40^ORU_R40"}
    assert all(ln["findings"] == ["OBX-8 empty"] and ln["raw"].startswith("MSH|") for ln in lines)
    assert {"time", "peer", "control_id", "answer"} <= set(lines[0])


async def test_down_then_up_on_the_same_port():
    rx = EhrReceiver(mode="down:0.3")
    port = await rx.start()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.5)
    assert [parse_ack(a).code for a in await exchange(port, [hl7("X1")])] == ["AA"]
    await rx.stop()


def test_cli_serves_until_terminated_and_logs(tmp_path, pumpgw_cmd, subprocess_env):
    log = tmp_path / "rx.jsonl"
    proc = subprocess.Popen(
        [*pumpgw_cmd, "ehr-sim", "--port", "0", "--log", str(log), "--mode", "ca"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.split(":")[1].split()[0])
        acks = asyncio.run(exchange(port, [hl7("K1"), hl7("K2")]))
        assert [parse_ack(a).code for a in acks] == ["CA", "CA"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "received 2 message(s)" in out
    assert [json.loads(x)["control_id"] for x in log.read_text().splitlines()] == ["K1", "K2"]


def test_cli_rejects_a_bad_mode_with_exit_2(pumpgw_cmd, subprocess_env):
    r = subprocess.run([*pumpgw_cmd, "ehr-sim", "--mode", "maybe"], env=subprocess_env, capture_output=True, text=True)
    assert r.returncode == 2 and "unknown term" in r.stderr
