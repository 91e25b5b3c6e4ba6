"""The formatter, the linter and the type checker are part of the suite, so the one test
command (README, .ci/run) keeps the code formatted, lint-free and type-clean at every commit.
Their configuration is in pyproject.toml; each runs as a real subprocess on the checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "command",
    [("ruff", "format", "--check", "."), ("ruff", "check", "."), ("mypy",)],
    ids=["ruff-format", "ruff-lint", "mypy"],
)
def test_the_checkout_passes_the_configured_static_checks(command):
    result = _run(*command)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
