"""Hostile configuration and scenario files end in the loader's own error, never a traceback."""

from __future__ import annotations

import subprocess

import pytest

from gateway.config import ConfigFileError, load_config, load_config_text
from simulators.scenario import ScenarioError, load_scenario

from .test_load_errors import BASE


@pytest.mark.parametrize("nested", ["a = " + "[" * 100_000 + "]" * 100_000, "a = " + "{b = " * 5_000 + "}" * 5_000])
def test_deeply_nested_toml_is_refused_with_its_position(tmp_path, nested):
    path = tmp_path / "deep.toml"
    path.write_text(BASE + nested)
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    (problem,) = caught.value.issues
    assert "nested more than 64 levels" in problem.message and problem.line == 8


def test_nesting_inside_strings_and_comments_is_not_counted():
    text = (
        BASE.replace(
            'path = "outbox.sqlite"',
            'path = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[.sqlite"',
        )
        + "# "
        + "[" * 100
    )
    assert load_config_text(text).outbox.path.name.startswith("[[[[")


def test_a_path_longer_than_the_file_system_allows_is_an_error_of_its_own(tmp_path):
    path = tmp_path / "long.toml"
    path.write_text(BASE.replace('"outbox.sqlite"', '"' + "o" * 300 + '.sqlite"'))
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    (problem,) = caught.value.issues
    assert problem.key == ("outbox", "path") and "name of 307 bytes" in problem.message


def test_a_config_file_path_too_long_to_open_is_reported_not_raised(tmp_path):
    with pytest.raises(ConfigFileError) as caught:
        load_config(tmp_path / ("c" * 300 + ".toml"))
    assert "at most 255 per name" in str(caught.value)


def test_an_oversized_config_file_is_refused_before_it_is_read_whole(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_bytes(BASE.encode() + b"#" * (5 * 1024 * 1024))
    with pytest.raises(ConfigFileError, match="larger than 4096 KiB"):
        load_config(path)


def test_check_config_on_a_deeply_nested_file_prints_the_problem_without_a_traceback(
    tmp_path, pumpgw_cmd, subprocess_env
):
    path = tmp_path / "deep.toml"
    path.write_text(BASE + "a = " + "[" * 100_000 + "]" * 100_000)
    result = subprocess.run(
        [*pumpgw_cmd, "check-config", str(path)], capture_output=True, text=True, env=subprocess_env, timeout=60
    )
    assert result.returncode != 0
    assert "nested more than 64 levels" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("content", ["x = " + "[" * 100_000, "[simulation]\nacceleration = 1e1000000000"])
def test_hostile_scenario_files_raise_scenario_error(tmp_path, content):
    path = tmp_path / "s.toml"
    path.write_text(content)
    with pytest.raises(ScenarioError):
        load_scenario(path)


def test_a_scenario_path_too_long_raises_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="per name"):
        load_scenario(tmp_path / ("s" * 300))
