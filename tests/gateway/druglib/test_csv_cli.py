"""`pumpgw library check|show|import-csv`, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gateway.druglib import load_library
from gateway.druglib.load import sha256_of

from .conftest import EXAMPLE

AREAS = """id,name,aliases,weight_soft_min_kg,weight_soft_max_kg,weight_hard_max_kg,max_rate_ml_h,max_vtbi_ml,source
ICU,Adult ICU,Crit Care|CCU,30,200,500,999,3000,[R1d][R1a]
OB,Labour and delivery,,30,200,500,999,3000,[R1d][R1a]
"""
ENTRIES = """id,drug,therapy,aliases,care_areas,kind,conc_amount,conc_amount_unit,conc_volume_ml,dose_unit,dose_soft_min,dose_soft_max,dose_hard_max,duration_hard_min,duration_soft_max,source,unsourced
dopamine-icu,Dopamine,,,ICU,continuous,400,mg,250,mcg/kg/min,0.9,20,30,,,[R1a],
oxytocin,Oxytocin,,Pitocin,OB,continuous,30,units,500,milliunits/min,1,41,60,,,[R1a],dose.hard_max
vancomycin,Vancomycin,,,ICU|OB,intermittent,1000,mg,200,mg,500,2000,,50,240,[R1a],
"""


def run(cmd: list[str], env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, "library", *args], env=env, capture_output=True, text=True, timeout=60)


def test_check_prints_summary_and_the_sha256_to_pin(pumpgw_cmd, subprocess_env):
    done = run(pumpgw_cmd, subprocess_env, "check", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert sha256_of(EXAMPLE.read_bytes()) in done.stdout and "17 (" in done.stdout


def test_check_with_a_wrong_pin_exits_1(pumpgw_cmd, subprocess_env):
    done = run(pumpgw_cmd, subprocess_env, "check", str(EXAMPLE), "--sha256", "0" * 64)
    assert done.returncode == 1 and "pin mismatch" in done.stderr


def test_check_lists_every_problem_with_its_line(pumpgw_cmd, subprocess_env, write_library):
    bad = write_library(lambda d: d["entries"][5]["dose_limits"].update(soft_max=40))
    done = run(pumpgw_cmd, subprocess_env, "check", str(bad))
    assert done.returncode == 1 and "line " in done.stderr and "soft_max 40 is above hard_max 30" in done.stderr


def test_show_lists_a_drug_by_alias_in_a_care_area_by_alias(pumpgw_cmd, subprocess_env):
    done = run(pumpgw_cmd, subprocess_env, "show", str(EXAMPLE), "--care-area", "crit care", "--drug", "levophed")
    assert done.returncode == 0, done.stderr
    assert "Norepinephrine" in done.stdout and "soft min 0.3 soft max 80 ug/min" in done.stdout


def test_import_csv_writes_a_valid_library_with_exact_numbers(pumpgw_cmd, subprocess_env, tmp_path: Path):
    (tmp_path / "areas.csv").write_text(AREAS)
    (tmp_path / "entries.csv").write_text(ENTRIES)
    out = tmp_path / "library.json"
    done = run(
        pumpgw_cmd,
        subprocess_env,
        "import-csv",
        str(tmp_path / "entries.csv"),
        "--care-areas",
        str(tmp_path / "areas.csv"),
        "--name",
        "Test",
        "--version",
        "t1",
        "--released",
        "2024-02-14",
        "--status",
        "released",
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert sha256_of(out.read_bytes()) in done.stdout
    lib = load_library(out).library
    assert [e.id for e in lib.entries] == ["dopamine-icu", "oxytocin", "vancomycin"]
    assert lib.entries[1].dose_limits.unsourced == ["hard_max"]
    assert json.loads(out.read_text())["entries"][0]["dose_limits"]["soft_min"] == 0.9


def test_import_csv_names_the_csv_line_of_each_problem(pumpgw_cmd, subprocess_env, tmp_path: Path):
    (tmp_path / "areas.csv").write_text(AREAS)
    broken = ENTRIES.replace("1,41,60", "1,41,0").replace("400,mg,250", '400,mg,"1,000"')
    (tmp_path / "entries.csv").write_text(broken)
    done = run(
        pumpgw_cmd,
        subprocess_env,
        "import-csv",
        str(tmp_path / "entries.csv"),
        "--care-areas",
        str(tmp_path / "areas.csv"),
        "--name",
        "Test",
        "--version",
        "t1",
        "--released",
        "2024-02-14",
        "-o",
        str(tmp_path / "out.json"),
    )
    assert done.returncode == 1
    assert "line 2: entries.csv column conc_volume_ml: not a number: '1,000'" in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_import_csv_maps_validation_problems_back_to_csv_lines(pumpgw_cmd, subprocess_env, tmp_path: Path):
    (tmp_path / "areas.csv").write_text(AREAS)
    (tmp_path / "entries.csv").write_text(ENTRIES.replace("1,41,60", "1,41,0"))
    done = run(
        pumpgw_cmd,
        subprocess_env,
        "import-csv",
        str(tmp_path / "entries.csv"),
        "--care-areas",
        str(tmp_path / "areas.csv"),
        "--name",
        "Test",
        "--version",
        "t1",
        "--released",
        "2024-02-14",
        "-o",
        str(tmp_path / "out.json"),
    )
    assert (
        done.returncode == 1
        and "line 3: entries.csv: entries[1].dose_limits" in done.stderr
        and "never 0" in done.stderr
    )


def _import(pumpgw_cmd, env, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return run(
        pumpgw_cmd,
        env,
        "import-csv",
        str(tmp_path / "entries.csv"),
        "--care-areas",
        str(tmp_path / "areas.csv"),
        "--name",
        "Test",
        "--version",
        "t1",
        "--released",
        "2024-02-14",
        "-o",
        str(tmp_path / "out.json"),
        *extra,
    )


def test_import_csv_reports_header_cell_and_rule_problems_in_one_run(pumpgw_cmd, subprocess_env, tmp_path: Path):
    """An unknown column, a malformed number on one row and a rule broken on another row: all
    three in the same run (it used to take three rounds of fixing)."""
    (tmp_path / "areas.csv").write_text(AREAS)
    broken = (
        ENTRIES.replace("source,unsourced", "source,unsourced,colour")
        .replace("400,mg,250", '400,mg,"1,000"')  # dopamine row (line 2): not a number
        .replace("1,41,60", "1,41,0")
    )  # oxytocin row (line 3): hard max below soft max
    (tmp_path / "entries.csv").write_text(broken)
    done = _import(pumpgw_cmd, subprocess_env, tmp_path)
    assert done.returncode == 1
    assert "entries.csv column colour: unknown column" in done.stderr
    assert "line 2: entries.csv column conc_volume_ml: not a number: '1,000'" in done.stderr
    assert any(line.strip().startswith("- line 3: entries.csv: entries[1]") for line in done.stderr.splitlines())
    assert "Traceback" not in done.stderr


def test_import_csv_refuses_to_overwrite_without_force(pumpgw_cmd, subprocess_env, tmp_path: Path):
    (tmp_path / "areas.csv").write_text(AREAS)
    (tmp_path / "entries.csv").write_text(ENTRIES)
    (tmp_path / "out.json").write_text("the library in force\n")
    done = _import(pumpgw_cmd, subprocess_env, tmp_path)
    assert done.returncode == 1 and "exists; not overwritten (give --force" in done.stderr
    assert (tmp_path / "out.json").read_text() == "the library in force\n"
    assert _import(pumpgw_cmd, subprocess_env, tmp_path, "--force").returncode == 0
    assert load_library(tmp_path / "out.json").library.version == "t1"
