"""The release: a wheel that carries everything a ward host needs, installable without a
source checkout, and documentation that cites nothing outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # offline: the build backend (hatchling) comes from the test environment
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("pumpgw-*.whl")
    return found


def test_wheel_carries_unit_sysusers_examples_schemas_docs_license_changelog(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "gateway/_systemd/pumpgw.service",
        "gateway/_systemd/pumpgw.sysusers.conf",
        "gateway/_config/ward-example.toml",
        "gateway/_config/demo.toml",
        "gateway/_config/drug-library.example.json",
        "gateway/_config/schema/gateway.schema.json",
        "gateway/_config/schema/drug-library.schema.json",
        "gateway/_docs/install.md",
        "gateway/_docs/operations.md",
        "gateway/_docs/config-reference.md",
        "gateway/_docs/LICENSE",
        "gateway/_docs/CHANGELOG.md",
        "gateway/_docs/constraints.txt",
        "gateway/health/server.py",
        "drivers/ne1000/codec.py",
        "simulators/fleet.py",
    ):
        assert required in names, required
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Apache-2.0" in text
    for dep in ("starlette", "uvicorn", "prometheus-client"):
        assert dep in text


def test_installed_wheel_installs_its_files_into_a_prefix_and_checks_its_example(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # the installed copy, not the checkout: PYTHONPATH puts it first; dependencies from this venv
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    prefix = tmp_path / "root"

    def pumpgw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )

    where = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert where.startswith(str(site))
    result = pumpgw("install-files", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    unit = (prefix / "etc/systemd/system/pumpgw.service").read_text()
    assert "ExecStart=/opt/pumpgw/bin/pumpgw run" in unit and "ExecStartPre=/opt/pumpgw/bin/pumpgw check-config" in unit
    assert "u pumpgw" in (prefix / "usr/lib/sysusers.d/pumpgw.conf").read_text()
    assert (prefix / "usr/share/pumpgw/schema/gateway.schema.json").is_file()
    assert (prefix / "usr/share/doc/pumpgw/install.md").is_file()
    assert (prefix / "usr/share/doc/pumpgw/LICENSE").read_text().lstrip().startswith("Apache License")
    config = prefix / "etc/pumpgw/gateway.toml"
    assert (prefix / "etc/pumpgw/gateway.toml").stat().st_mode & 0o777 == 0o640
    # the example's pin matches the example library installed beside it
    lib = prefix / "etc/pumpgw/drug-library.json"
    check = pumpgw(
        "library", "check", str(lib), "--sha256", re.search(r'sha256 = "([0-9a-f]{64})"', config.read_text()).group(1)
    )
    assert check.returncode == 0, check.stderr
    assert pumpgw("check-config", str(config), "--file-only").returncode == 0
    # a second run keeps the operator's edits
    config.write_text(config.read_text() + "\n# edited by the ward\n")
    again = pumpgw("install-files", "--prefix", str(prefix))
    assert again.returncode == 0 and f"kept       {config}" in again.stdout
    assert config.read_text().endswith("# edited by the ward\n")


def test_constraints_pin_every_runtime_dependency():
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for dep in (
        "pyserial",
        "paho-mqtt",
        "hl7apy",
        "pydantic",
        "structlog",
        "tenacity",
        "starlette",
        "uvicorn",
        "prometheus-client",
    ):
        assert dep in pins, dep


def test_docs_cite_nothing_outside_the_repository():
    offenders = []
    for path in [*(REPO / "docs").glob("*.md"), REPO / "README.md"]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(
                r"shared/|design\.md|reference/|ihe-pcd\.md|pump-protocols\.md|not part of this repository", line
            ):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []
