"""The shipped systemd unit is valid and carries the settings operations rely on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pumpgw.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_is_notify_type_with_watchdog_restart_and_dedicated_user():
    d = directives()
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"]
    assert d["User"] == ["pumpgw"] and "dialout" in d["SupplementaryGroups"][0]
    assert d["StateDirectory"] == ["pumpgw"]
    assert any("run --config" in v for v in d["ExecStart"])


@pytest.mark.parametrize(
    "key,value",
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("DevicePolicy", "closed"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_unit_is_hardened(key, value):
    assert directives().get(key) == [value]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_reports_nothing(tmp_path):
    # verify checks that ExecStart binaries exist: point them at this interpreter's pumpgw
    # stand-in (the unit's /opt/pumpgw path only exists on a gateway host).
    unit = tmp_path / "pumpgw.service"
    unit.write_text(UNIT.read_text().replace("/opt/pumpgw/bin/pumpgw", sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr
