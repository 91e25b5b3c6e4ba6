"""Scenario files: validation, group expansion, the timeline, and `pumpgw simulate`."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from drivers.alaris.client import AlarisDriver
from drivers.bbraun_bcc import session as bcc_session
from drivers.bbraun_bcc.client import BccDriver, rack_address
from drivers.errors import ReplyTimeout
from drivers.ne1000.client import Ne1000Driver
from drivers.transport import open_serial, open_tcp
from simulators.scenario import Scenario, ScenarioError, ScenarioFile, load_scenario
from simulators.scenario_runner import ScenarioRunner

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["ward.toml", "load-500.toml"])
def test_shipped_scenarios_load(name):
    scenario = load_scenario(REPO / "config" / "scenarios" / name)
    assert scenario.pumps


def test_load_500_has_500_pumps_with_racks_of_at_most_72_slots():
    scenario = load_scenario(REPO / "config" / "scenarios" / "load-500.toml")
    assert len(scenario.pumps) == 500
    by_protocol = {p: sum(1 for s in scenario.pumps if s.protocol == p) for p in ("ne1000", "alaris", "bbraun-bcc")}
    assert by_protocol == {"ne1000": 50, "alaris": 50, "bbraun-bcc": 400}
    assert len(scenario.racks) == 6
    timed = [p for p in scenario.pumps if p.at]
    assert len(timed) == 5 + 10 + 10
    assert sorted({a.t_s for p in timed if p.protocol == "alaris" for a in p.at if a.action == "fault"})[:2] == [
        20.0,
        22.0,
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[[pumps]]\nid = "a"\nprotocol = "alaris"\nfaults = { slient = true }\n',
            ':4: pumps[0].faults.slient: unknown key "slient"; did you mean silent?',
        ),
        ('[[pumps]]\nid = "a"\nprotocol = "bbraun-bcc"\n', "needs rack, pillar and slot"),
        (
            '[[pumps]]\nid = "a"\nprotocol = "alaris"\n[[pumps.at]]\nt_s = 1\naction = "alarm"\nkind = "fire"\n',
            "unknown alarm kind",
        ),
        ('[[pumps]]\nid = "a"\nprotocol = "alaris"\n[[pumps.at]]\nt_s = 1\naction = "titrate"\n', "needs 'rate_ml_h'"),
        ('[[pumps]]\nid = "a"\nprotocol = "alaris"\n[[pumps]]\nid = "a"\nprotocol = "ne1000"\n', "already used"),
        ('[[pumps]]\nid = "a"\nprotocol = "bbraun-bcc"\nrack = "r"\npillar = 1\nslot = 1\n', "no [[racks]]"),
        ("[simulation\n", "not valid TOML"),
    ],
)
def test_invalid_scenarios_name_the_file_and_the_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert needle in str(caught.value) and str(path) in str(caught.value)


async def test_runner_serves_all_three_protocols_and_applies_the_timeline(tmp_path, monkeypatch):
    monkeypatch.setattr(bcc_session, "MIN_REQUEST_GAP_S", 0.0)
    scenario = Scenario(
        ScenarioFile.model_validate(
            {
                "racks": [{"id": "r1", "pillars": 1, "slots": 4}],
                "pumps": [
                    {"id": "ne", "protocol": "ne1000", "rate_ml_h": 15.4, "vtbi_ml": 250},
                    {
                        "id": "al",
                        "protocol": "alaris",
                        "serial": "8002-51740",
                        "rate_ml_h": 8,
                        "at": [
                            {"t_s": 0.2, "action": "fault", "silent": True},
                            {"t_s": 0.2, "action": "titrate", "rate_ml_h": 12},
                        ],
                    },
                    {
                        "id": "bb",
                        "protocol": "bbraun-bcc",
                        "rack": "r1",
                        "pillar": 1,
                        "slot": 3,
                        "rate_ml_h": 20,
                        "at": [{"t_s": 0.2, "action": "swap_identity", "serial": "999"}],
                    },
                ],
            }
        )
    )
    runner = ScenarioRunner(scenario, pty_dir=tmp_path)
    async with runner:
        endpoints = {e.pump_id: e for e in runner.endpoints}
        assert endpoints["ne"].path == str(tmp_path / "ne") and endpoints["bb"].slot == 3
        links = [
            await open_serial(endpoints["ne"].path, name="ne"),
            await open_serial(endpoints["al"].path, name="al"),
            await open_tcp("127.0.0.1", endpoints["bb"].port or 0, name="bb"),
        ]
        try:
            ne = Ne1000Driver(links[0], pump_id="ne")
            al = AlarisDriver(links[1], pump_id="al", request_timeout_s=0.3)
            bb = BccDriver(links[2], pump_id="bb", address=rack_address(1, 3))
            assert (await ne.poll()).channels[0].rate.value == Decimal("15.40")
            assert (await al.poll()).identity.serial_number == "8002-51740"
            assert (await bb.poll()).channels[0].rate.value == Decimal("20.00")
            await asyncio.sleep(0.4)
            with pytest.raises(ReplyTimeout):
                await al.poll()
            assert runner.handles["al"].pump.program.rate_ml_h == Decimal("12")
        finally:
            for link in links:
                await link.close()
    assert {(pid, action) for _t, pid, action in runner.applied} == {
        ("al", "fault"),
        ("al", "titrate"),
        ("bb", "swap_identity"),
    }
    assert not (tmp_path / "ne").exists()  # symlinks removed on stop


def test_pumpgw_simulate_prints_endpoints_and_writes_a_config_check_config_accepts(
    tmp_path, pumpgw_cmd, subprocess_env
):
    out = tmp_path / "gw.toml"
    proc = subprocess.Popen(
        [
            *pumpgw_cmd,
            "simulate",
            "--scenario",
            str(REPO / "config/scenarios/ward.toml"),
            "--write-config",
            str(out),
            "--ehr-port",
            "2999",
            "--pty-dir",
            str(tmp_path / "ptys"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env,
    )
    try:
        lines = []
        assert proc.stdout is not None
        while not any("running" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        check = subprocess.run(
            [*pumpgw_cmd, "check-config", str(out)], capture_output=True, text=True, env=subprocess_env
        )
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, rest
    assert re.search(r"rack-p1s2\s+bbraun-bcc tcp 127\.0\.0\.1:\d+ pillar 1 slot 2", text)
    assert f"bed03            alaris     pty {tmp_path / 'ptys' / 'bed03'}" in text
    assert check.returncode == 0, check.stderr
    assert "127.0.0.1:2999" in check.stdout and "bed03" in check.stdout


def test_invalid_scenario_exits_1_with_the_key(tmp_path, pumpgw_cmd, subprocess_env):
    path = write(tmp_path, '[[pumps]]\nid = "a"\nprotocol = "infusomat"\n')
    result = subprocess.run(
        [*pumpgw_cmd, "simulate", "--scenario", str(path)], capture_output=True, text=True, env=subprocess_env
    )
    assert result.returncode == 1 and f"{path}:3: pumps[0].protocol: expected one of:" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "protocol, action, extra, accepted",
    [
        ("alaris", "identity_unreadable", "", True),
        ("ne1000", "identity_unreadable", "", False),  # no serial number to lose
        ("alaris", "library", 'library_version = "L2"', False),  # no protocol reports it
        ("ne1000", "firmware", 'firmware = "3.930"', True),
    ],
)
def test_identity_steps_are_accepted_only_for_protocols_that_carry_the_field(
    tmp_path, protocol, action, extra, accepted
):
    path = write(
        tmp_path,
        f"""
        [[pumps]]
        id = "bed03"
        protocol = "{protocol}"
        [[pumps.at]]
        t_s = 1
        action = "{action}"
        {extra}
        """,
    )
    if accepted:
        assert load_scenario(path).pumps[0].at[0].action == action
    else:
        with pytest.raises(ScenarioError, match=f"protocol {protocol} does not report"):
            load_scenario(path)


async def test_firmware_step_reboots_an_ne1000_so_its_identity_is_read_again(tmp_path):
    scenario = Scenario(
        ScenarioFile.model_validate(
            {"pumps": [{"id": "bed05", "protocol": "ne1000", "firmware": "3.928", "rate_ml_h": 5}]}
        )
    )
    runner = ScenarioRunner(scenario, pty_dir=tmp_path)
    endpoints = await runner.start()
    try:
        link = await open_serial(endpoints[0].path, name="bed05")
        driver = Ne1000Driver(link, pump_id="bed05")
        try:
            assert (await driver.poll()).identity.firmware == "3.928"
            from simulators.scenario import Action

            await runner.apply("bed05", Action(t_s=0, action="firmware", firmware="3.930"))
            for _ in range(3):  # the reboot's A?R is acknowledged, the identity re-read
                snapshot = await driver.poll()
            assert snapshot.identity.firmware == "3.930"
        finally:
            await link.close()
    finally:
        await runner.stop()
