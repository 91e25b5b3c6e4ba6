"""`.ci/sbom` writes a CycloneDX SBOM naming every runtime dependency of the installed pumpgw."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

from tests.conftest import REPO


def test_sbom_of_the_installed_environment_lists_pumpgw_and_every_runtime_dependency(tmp_path):
    result = subprocess.run(
        [str(REPO / ".ci" / "sbom"), "--python", sys.executable, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bom = json.loads((tmp_path / f"pumpgw-{project['version']}.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["name"] == "pumpgw"
    assert bom["metadata"]["component"]["version"] == project["version"]
    listed = {c["name"].lower().replace("_", "-"): c for c in bom["components"]}
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")
        assert name in listed, name
        assert listed[name]["version"] and listed[name]["purl"].startswith(f"pkg:pypi/{name}@")
