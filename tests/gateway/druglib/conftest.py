"""Fixtures: the shipped example library, and a writer for library variants in tmp_path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from common.resources import config_dir
from gateway.druglib import LoadedLibrary, load_library

EXAMPLE = config_dir() / "drug-library.example.json"


@pytest.fixture(scope="session")
def example_data() -> dict:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def example() -> LoadedLibrary:
    return load_library(EXAMPLE)


@pytest.fixture
def write_library(tmp_path: Path, example_data: dict):
    """Write a (modified) copy of the example; ``edit`` receives the dict to change in place."""
    counter = iter(range(10_000))

    def write(edit=None, *, text: str | None = None) -> Path:
        path = tmp_path / f"library-{next(counter)}.json"
        if text is None:
            data = copy.deepcopy(example_data)
            if edit is not None:
                edit(data)
            text = json.dumps(data, indent=2)
        path.write_text(text, encoding="utf-8")
        return path

    return write
