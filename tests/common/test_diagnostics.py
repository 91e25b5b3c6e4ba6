"""One "problem in file at line" type for the configuration, the drug library and scenarios
(common/diagnostics.py, issue 19 item 3)."""

from __future__ import annotations

import json

import pytest

from common.diagnostics import Problem, format_key, line_for
from gateway.config import ConfigFileError, load_config_text
from gateway.druglib.errors import LibraryInvalid
from gateway.druglib.load import load_library
from simulators.scenario import ScenarioError, load_scenario


def test_a_problem_with_a_file_reads_like_a_compiler_diagnostic():
    problem = Problem("ward.toml", ("pumps", 3, "link", "baudrate"), "expected 9600; got 9601", 42, 7)
    assert str(problem) == "ward.toml:42:7: pumps[3].link.baudrate: expected 9600; got 9601"
    assert str(Problem("ward.toml", (), "cannot read file")) == "ward.toml: cannot read file"


def test_a_problem_inside_an_error_that_names_the_file_starts_with_its_line():
    assert (
        str(Problem("", "entries[0].drug", "required key is missing", 4))
        == "line 4: entries[0].drug: required key is missing"
    )
    assert str(Problem("", "(file)", "JSON syntax error")) == "(file): JSON syntax error"


def test_line_for_looks_up_the_nearest_written_ancestor():
    lines = {("pumps",): 3, ("pumps", 0): 3, ("pumps", 0, "link"): 5}
    assert line_for(lines, ("pumps", 0, "link", "url")) == 5
    assert line_for(lines, ("mqtt", "host")) is None
    assert line_for({(): 1}, ("anything",)) == 1
    assert format_key(("ttl_s", "odd key")) == 'ttl_s."odd key"'


def test_config_library_and_scenario_problems_are_the_same_type_and_shape(tmp_path):
    with pytest.raises(ConfigFileError) as config:
        load_config_text('[gateway]\nid = "gw"\nwardd = "x"\n', source="ward.toml")
    assert all(type(p) is Problem for p in config.value.issues)
    assert any(str(p).startswith("ward.toml:3: gateway.wardd: ") for p in config.value.issues)

    library = tmp_path / "lib.json"
    library.write_text(json.dumps({"version": "1"}, indent=1))
    with pytest.raises(LibraryInvalid) as lib:
        load_library(library)
    assert all(isinstance(p, Problem) for p in lib.value.problems)

    scenario = tmp_path / "s.toml"
    scenario.write_text('[[pumps]]\nid = "p1"\nprotocoll = "ne1000"\n')
    with pytest.raises(ScenarioError) as scen:
        load_scenario(scenario)
    assert any(p.startswith(f"{scenario}:3: pumps[0].protocoll: ") for p in scen.value.problems)
