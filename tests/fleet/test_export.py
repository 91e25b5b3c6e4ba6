"""CSV/JSON export of report rows (an encoder: hypothesis), and the documented fleet.toml keys."""

from __future__ import annotations

import csv
import io
import json
import re
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.config import FleetSettings
from fleet.reports.export import to_csv, to_json


@dataclass(frozen=True, slots=True)
class Row:
    name: str | None
    count: int
    at: datetime
    details: dict[str, str]


rows = st.lists(
    st.builds(
        Row,
        st.none() | st.text(max_size=30),
        st.integers(-(10**9), 10**9),
        st.datetimes(timezones=st.just(UTC)),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(rows)
def test_csv_reads_back_cell_for_cell_and_never_starts_a_cell_with_a_formula(data: list[Row]) -> None:
    parsed = list(csv.reader(io.StringIO(to_csv(data, Row), newline="")))
    assert parsed[0] == ["name", "count", "at", "details"]
    assert len(parsed) == len(data) + 1
    for row, cells in zip(data, parsed[1:], strict=True):
        name = cells[0]
        if (
            row.name
            and row.name[0] in "=+-@"
            and not re.fullmatch(r"[-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", row.name)
        ):
            assert name == "'" + row.name
        else:
            assert name == (row.name or "")
        assert int(cells[1]) == row.count and datetime.fromisoformat(cells[2]) == row.at
        assert json.loads(cells[3]) == row.details


@settings(max_examples=100, deadline=None)
@given(rows)
def test_json_export_keeps_every_field(data: list[Row]) -> None:
    back = json.loads(to_json(data))
    assert [r["count"] for r in back] == [r.count for r in data]
    assert [r["at"] for r in back] == [r.at.isoformat() for r in data]


def test_every_fleet_toml_key_is_documented_for_operators() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    doc = (docs / "fleet.md").read_text() + (docs / "fleet-ui.md").read_text()  # [web]: the UI's guide
    for section, model in FleetSettings.model_fields.items():
        assert f"[{section}]" in doc, section
        # an optional table ([web]) is `Model | None`: check the model's keys
        sub = next((a for a in typing.get_args(model.annotation) if hasattr(a, "model_fields")), model.annotation)
        for key in sub.model_fields:  # type: ignore[union-attr]
            assert f"{key} =" in doc or f"[{section}.{key}]" in doc or f"[[{section}.{key}]]" in doc, (
                f"{section}.{key} is not in docs/fleet.md"
            )
