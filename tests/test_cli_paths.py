"""Every command that takes a path, given an unusable one: a one-line error naming the path,
exit 1 (or 2 for usage), never a traceback. Real subprocesses, real file-system errors."""

from __future__ import annotations

import subprocess

import pytest

from common.resources import config_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def places(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {
        "under-a-file": blocker / "x.toml",  # NotADirectoryError
        "a-folder": folder,  # IsADirectoryError where a file is wanted
        "missing": tmp_path / "nowhere" / "x.toml",  # FileNotFoundError
    }


AREAS = "id,name\nICU,Adult ICU\n"
ENTRIES = "id,drug,care_areas,kind,dose_unit,rate_soft_min,rate_hard_max\nsaline,Saline,ICU,continuous,mL/h,1,500\n"


def _csv(tmp_path, name: str, text: str):
    path = tmp_path / name
    if tmp_path.name != "T":
        path.write_text(text, encoding="utf-8")
    return path


def commands(p, tmp_path):
    demo = str(config_dir() / "demo.toml")
    scenario = str(config_dir() / "scenarios" / "ward.toml")
    return {
        "run": ["run", p],
        "run --config": ["run", "--config", p],
        "check-config": ["check-config", p],
        "status": ["status", p],
        "demo --config": ["demo", "--config", p, "--duration", "1"],
        "demo --state-dir": ["demo", "--state-dir", p, "--duration", "1"],
        "schema --out": ["schema", "--out", p],
        "schema --docs": ["schema", "--out", str(tmp_path / "schemas"), "--docs", p],
        "library check": ["library", "check", p],
        "library show": ["library", "show", p, "--care-area", "ICU"],
        "library import-csv -o": [
            "library",
            "import-csv",
            str(_csv(tmp_path, "entries.csv", ENTRIES)),
            "--care-areas",
            str(_csv(tmp_path, "areas.csv", AREAS)),
            "--name",
            "n",
            "--version",
            "v",
            "--released",
            "2024-01-01",
            "-o",
            p,
        ],
        "library import-csv input": [
            "library",
            "import-csv",
            p,
            "--care-areas",
            p,
            "--name",
            "n",
            "--version",
            "v",
            "--released",
            "2024-01-01",
            "-o",
            str(tmp_path / "o.json"),
        ],
        "outbox --db": ["outbox", "stats", "--db", p],
        "outbox --config": ["outbox", "--config", p, "stats"],
        "hl7 check": ["hl7", "check", p],
        "ehr-sim --log": ["ehr-sim", "--port", "0", "--log", p],
        "ehr-sim --schedule": ["ehr-sim", "--port", "0", "--schedule", p],
        "simulate --scenario": ["simulate", "--scenario", p, "--duration", "1"],
        "simulate --write-config": ["simulate", "--scenario", scenario, "--write-config", p, "--duration", "1"],
        "simulate --pty-dir": ["simulate", "--scenario", scenario, "--pty-dir", p, "--duration", "1"],
        "demo (control)": ["check-config", demo, "--file-only"],
    }


NAMES = sorted(commands("P", __import__("pathlib").Path("T")))


@pytest.mark.parametrize("kind", ["under-a-file", "a-folder", "missing"])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "demo (control)"])
def test_an_unusable_path_gives_one_line_naming_it_and_no_traceback(
    name, kind, places, tmp_path, pumpgw_cmd, subprocess_env
):
    path = places[kind]
    argv = commands(str(path), tmp_path)[name]
    result = subprocess.run([*pumpgw_cmd, *argv], env=subprocess_env, capture_output=True, text=True, timeout=90)
    assert "Traceback" not in result.stderr, result.stderr
    if kind == "a-folder" and name in ("simulate --pty-dir", "schema --out", "demo --state-dir"):
        assert result.returncode == 0  # a folder is what these options want
        return
    if kind == "missing" and name in (
        "simulate --pty-dir",
        "schema --out",
        "schema --docs",
        "demo --state-dir",
        "library import-csv -o",
    ):
        # output locations that may be created: the command creates the folder or says why not
        assert result.returncode in (0, 1), result.stderr
        return
    assert result.returncode in (1, 2), (result.returncode, result.stdout, result.stderr)
    assert str(path) in result.stderr or path.name in result.stderr, result.stderr
