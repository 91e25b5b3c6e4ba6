"""Hostile drug-library files are refused with the loader's errors; the watcher survives them."""

from __future__ import annotations

import asyncio
import os

import pytest

from gateway.druglib import LibraryHolder, LibraryInvalid, LibraryUnreadable, load_library

from .conftest import EXAMPLE


def write(tmp_path, text: str):
    path = tmp_path / "library.json"
    path.write_text(text)
    return path


def test_deep_nesting_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, '{\n"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(LibraryInvalid) as caught:
        load_library(path)
    (problem,) = caught.value.problems
    assert "nested more than 64 levels" in problem.message and problem.line == 2


@pytest.mark.parametrize("literal", ["1e1000000", "1e-999999", "9" * 5000, "1E+999999"])
def test_numeric_overflow_is_refused_with_its_file_position(tmp_path, literal):
    text = EXAMPLE.read_text()
    at = text.index('"volume_ml": ') + len('"volume_ml": ')
    end = at + len(text[at:].split(",")[0].split("}")[0])
    path = write(tmp_path, text[:at] + literal + text[end:])
    with pytest.raises(LibraryInvalid) as caught:
        load_library(path)
    (problem,) = caught.value.problems
    assert "outside what a drug library may contain" in problem.message
    assert problem.line == text.count("\n", 0, at) + 1


def test_an_oversized_library_is_refused_before_it_is_read_whole(tmp_path):
    path = tmp_path / "library.json"
    path.write_bytes(b" " * (17 * 1024 * 1024))
    with pytest.raises(LibraryUnreadable, match="larger than"):
        load_library(path)


def test_a_library_path_too_long_is_unreadable_not_oserror(tmp_path):
    with pytest.raises(LibraryUnreadable, match="per name"):
        load_library(tmp_path / ("l" * 300 + ".json"))


def test_the_watcher_survives_a_hostile_file_alerts_and_takes_the_fixed_file(tmp_path):
    path = write(tmp_path, EXAMPLE.read_text())
    alerts: list[dict] = []
    holder = LibraryHolder(path, on_alert=lambda kind, details: alerts.append(details))

    async def scenario() -> None:
        task = asyncio.create_task(holder.watch(interval_s=0.01))
        try:
            await wait_for(lambda: holder.current is not None)
            for hostile in ("[" * 100_000, EXAMPLE.read_text().replace('"volume_ml": 250', '"volume_ml": 1e-999999')):
                path.write_text(hostile)
                os.utime(path)
                count = len(alerts)
                await wait_for(lambda: len(alerts) == count + 1)
            assert not task.done()
            path.write_text(EXAMPLE.read_text().replace('"version": "example-2024.1"', '"version": "example-2024.9"'))
            await wait_for(lambda: holder.current.version == "example-2024.9")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), timeout=20))
    assert len(alerts) == 2


async def wait_for(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)
