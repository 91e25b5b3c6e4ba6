"""The README's two set-up commands stay true: CI runs exactly the README's test command."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("python3 -m venv")]


def test_readme_has_one_demo_and_one_test_command():
    demo, test = readme_commands()
    assert demo.endswith("pumpgw demo")
    assert test.endswith("python -m pytest") and "'.[test]'" in test


def test_ci_runs_exactly_the_readme_test_command():
    _, test = readme_commands()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test in ci_lines
