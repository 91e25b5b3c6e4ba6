"""The fleet's systemd unit runs `pumpgw fleet run` hardened, migrating first."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pumpgw-fleet.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_fleet_unit_migrates_then_runs_restarts_and_is_hardened() -> None:
    d = directives()
    assert any("fleet migrate --config /etc/pumpgw/fleet.toml" in v for v in d["ExecStartPre"])
    assert any("fleet run --config /etc/pumpgw/fleet.toml" in v for v in d["ExecStart"])
    assert d["Restart"] == ["on-failure"] and d["User"] == ["pumpgw"]
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
    ):
        assert d.get(key) == [value], key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_accepts_the_fleet_unit(tmp_path: Path) -> None:
    unit = tmp_path / "pumpgw-fleet.service"
    unit.write_text(UNIT.read_text().replace("/opt/pumpgw/bin/pumpgw", sys.executable))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr
