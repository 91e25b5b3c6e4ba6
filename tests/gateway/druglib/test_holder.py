"""The library in force survives bad files: refusal, pin, alert once, reload on change."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from gateway.druglib import ALERT_REFUSED, LibraryHolder, LibraryInvalid, LibraryPinMismatch, ReloadStatus
from gateway.druglib.load import sha256_of

from .conftest import EXAMPLE


@pytest.fixture
def library_file(tmp_path: Path) -> Path:
    path = tmp_path / "library.json"
    path.write_bytes(EXAMPLE.read_bytes())
    return path


def bump_version(path: Path, version: str) -> None:
    data = json.loads(path.read_text())
    data["version"] = version
    path.write_text(json.dumps(data))


def test_first_reload_puts_the_file_in_force(library_file):
    holder = LibraryHolder(library_file)
    result = holder.reload()
    assert result.status is ReloadStatus.LOADED and holder.current is result.in_force
    assert holder.current.sha256 == sha256_of(library_file.read_bytes())
    assert holder.reload().status is ReloadStatus.UNCHANGED


def test_a_broken_file_is_refused_the_previous_library_stays_and_one_alert_is_raised(library_file):
    alerts: list[tuple[str, dict]] = []
    holder = LibraryHolder(library_file, on_alert=lambda kind, details: alerts.append((kind, details)))
    good = holder.reload().in_force
    library_file.write_text(library_file.read_text().replace('"soft_max": 20,', '"soft_max": 200,', 1))
    result = holder.reload()
    assert result.refused and isinstance(result.error, LibraryInvalid)
    assert holder.current is good
    assert holder.reload().refused  # the same bad bytes again: still refused ...
    assert len(alerts) == 1  # ... but alerted once
    kind, details = alerts[0]
    assert kind == ALERT_REFUSED and details["in_force_version"] == good.version
    assert any("soft_max 200 is above hard_max 30" in p for p in details["problems"])


def test_a_file_that_does_not_match_the_pin_is_refused(library_file):
    pin = sha256_of(library_file.read_bytes())
    holder = LibraryHolder(library_file, expected_sha256=pin)
    assert holder.reload().status is ReloadStatus.LOADED
    bump_version(library_file, "example-2024.2")  # valid, but not the pinned artefact
    result = holder.reload()
    assert isinstance(result.error, LibraryPinMismatch) and result.error.expected == pin
    assert holder.current.version == "example-2024.1"


def test_a_draft_library_is_not_put_in_force(library_file):
    library_file.write_text(library_file.read_text().replace('"status": "released"', '"status": "draft"'))
    holder = LibraryHolder(library_file)
    assert holder.reload().refused and holder.current is None


def test_a_missing_file_is_refused_and_reported(tmp_path):
    alerts = []
    holder = LibraryHolder(tmp_path / "absent.json", on_alert=lambda k, d: alerts.append(d))
    result = holder.reload()
    assert result.refused and "cannot read file" in str(result.error) and len(alerts) == 1


def test_an_alert_hook_that_raises_does_not_hide_the_refusal(library_file):
    def broken(kind, details):
        raise RuntimeError("listener bug")

    library_file.write_text("{")
    assert LibraryHolder(library_file, on_alert=broken).reload().refused


def test_watch_reloads_a_changed_file_and_keeps_the_old_one_when_the_new_one_is_bad(library_file):
    alerts = []
    holder = LibraryHolder(library_file, on_alert=lambda k, d: alerts.append(d))

    async def scenario() -> None:
        task = asyncio.create_task(holder.watch(interval_s=0.01))
        try:
            await wait_for(lambda: holder.current is not None)
            bump_version(library_file, "example-2024.2")
            await wait_for(lambda: holder.current.version == "example-2024.2")
            library_file.write_text("{ not json")
            os.utime(library_file)
            await wait_for(lambda: len(alerts) == 1)
            assert holder.current.version == "example-2024.2"
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))


async def wait_for(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)
