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
    assert d["User"] == ["pumpgw"] and d["Group"] == ["pumpgw"]
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
        ("ProcSubset", "pid"),
        ("PrivateMounts", "yes"),
        ("PrivateUsers", "yes"),
        ("ReadOnlyPaths", "/etc/pumpgw"),
        ("IPAddressDeny", "any"),
        ("IPAddressAllow", "localhost"),
        ("UMask", "0077"),
        ("LoadCredential", "pumpgw:/etc/pumpgw/credentials"),
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
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr


def test_serial_access_comes_from_a_udev_rule_for_group_pumpgw_not_from_dialout():
    """Least privilege: dialout would grant every serial port and modem; PrivateUsers= would
    not map it anyway. The rule gives the USB serial adapters to the service's own group."""
    d = directives()
    assert "SupplementaryGroups" not in d
    rules = (UNIT.parent / "70-pumpgw-serial.rules").read_text()
    active = [line for line in rules.splitlines() if line and not line.startswith("#")]
    assert active and all('GROUP="pumpgw"' in line and 'MODE="0660"' in line for line in active)
    assert "dialout" not in (UNIT.parent / "pumpgw.sysusers.conf").read_text().split("#")[-1]


def test_the_credentials_folder_is_created_root_only_so_load_credential_never_fails():
    line = next(x for x in (UNIT.parent / "pumpgw.tmpfiles.conf").read_text().splitlines() if x.startswith("d "))
    assert line.split()[1:5] == ["/etc/pumpgw/credentials", "0700", "root", "root"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_security_exposure_is_at_most_1_2(tmp_path):
    unit = tmp_path / "pumpgw.service"
    unit.write_text(UNIT.read_text())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert last, result.stdout + result.stderr
    exposure = float(last[0].split(":")[1].split()[0])
    assert exposure <= 1.2, result.stdout
