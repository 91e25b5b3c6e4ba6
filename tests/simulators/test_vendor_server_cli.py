"""`pumpgw simulate --vendor-server` runs a script against a real source listener; a bad
script is refused naming the step and key."""

from __future__ import annotations

import asyncio

from tests.gateway.sources.conftest import running_gateway

SCRIPT = """
[server]
id_prefix = "CLI"

[[steps]]
send = "all_verdicts"

[[steps]]
at_s = 0.1
send = "pcd10"
program = "above_hard_max"
fault = "disconnect"

[[steps]]
at_s = 0.2
send = "pcd04"
program = "above_hard_max"
event = "start"
fault = "duplicate"
"""


async def test_the_vendor_server_script_runs_against_a_source_with_its_faults(tmp_path, pumpgw_cmd, subprocess_env):
    script = tmp_path / "vendor.toml"
    script.write_text(SCRIPT, encoding="utf-8")
    async with running_gateway(tmp_path) as gw:
        proc = await asyncio.create_subprocess_exec(
            *pumpgw_cmd,
            "simulate",
            "--vendor-server",
            f"127.0.0.1:{gw.port}",
            "--vendor-script",
            str(script),
            "--duration",
            "60",
            env=subprocess_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert b"15 message(s) acknowledged (CA)" in out  # 14 messages, one sent twice
        assert gw.handler.counters["accepted"] == 14 and gw.handler.counters["duplicates"] == 1


async def test_a_bad_vendor_script_is_refused_naming_the_step(tmp_path, pumpgw_cmd, subprocess_env):
    script = tmp_path / "bad.toml"
    script.write_text('[[steps]]\nsend = "pcd01"\nprogram = "nonsense"\ncolour = 1\n', encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        *pumpgw_cmd,
        "simulate",
        "--vendor-server",
        "127.0.0.1:1",
        "--vendor-script",
        str(script),
        env=subprocess_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and b"steps.0.colour" in err and b"Traceback" not in err
