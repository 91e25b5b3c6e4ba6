"""Spreadsheet exports -> library JSON (``pumpgw library import-csv``).

Pharmacy tools export to Excel (reference §8); one CSV row per entry is the common ground. The
columns are documented in docs/drug-library.md; a limit group ``<p>`` is the four columns
``<p>_hard_min``, ``<p>_soft_min``, ``<p>_soft_max``, ``<p>_hard_max``. Lists (care areas,
aliases, unsourced) are separated by ``|``. Empty cells mean "not set" -- never 0.

The rows are turned into the JSON shape and validated by the same code that loads libraries;
every problem is reported with the CSV file and line.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

from gateway.druglib.errors import LibraryInvalid, LibraryProblem
from gateway.druglib.load import LoadedLibrary, load_library_bytes
from gateway.druglib.model import FORMAT, LIMIT_NAMES

LIMIT_GROUPS = {
    "dose": "dose_limits",
    "rate": "rate_limits_ml_h",
    "duration": "duration_limits_min",
    "bolus": "bolus_limits",
    "bolus_rate": "bolus_rate_limits",
    "loading": "loading_limits",
}
ENTRY_TEXT = (
    "id",
    "drug",
    "therapy",
    "kind",
    "dose_unit",
    "bolus_unit",
    "bolus_rate_unit",
    "loading_unit",
    "advisory",
    "note",
)
ENTRY_COLUMNS = frozenset(
    {
        *ENTRY_TEXT,
        "aliases",
        "care_areas",
        "initial_dose",
        "source",
        "unsourced",
        "conc_amount",
        "conc_amount_unit",
        "conc_volume_ml",
        "conc_custom",
        "conc_limits_unit",
        "conc_source",
        *(f"conc_{n}" for n in LIMIT_NAMES),
        *(f"{g}_{n}" for g in LIMIT_GROUPS for n in LIMIT_NAMES),
    }
)
AREA_COLUMNS = frozenset(
    {
        "id",
        "name",
        "aliases",
        "max_rate_ml_h",
        "max_vtbi_ml",
        "source",
        "note",
        *(f"weight_{n}_kg" for n in LIMIT_NAMES),
    }
)


class _Rows:
    def __init__(self, path: Path, allowed: frozenset[str], required: tuple[str, ...]) -> None:
        self.path = path
        self.problems: list[LibraryProblem] = []
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a BOM
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        for name in header:
            if name not in allowed:
                self.problem(1, name, "unknown column (see docs/drug-library.md for the column list)")
        self.missing_required = [name for name in required if name not in header]
        for name in self.missing_required:
            self.problem(1, name, "required column is missing")
        # Rows are read even after a header problem, so one run reports every problem.
        self.rows = [(reader.line_num, row) for row in reader]

    def problem(self, line: int, column: str, message: str) -> None:
        self.problems.append(LibraryProblem(f"{self.path.name} column {column}", message, line))

    def number(self, line: int, row: dict, column: str) -> Decimal | None:
        text = (row.get(column) or "").strip()
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            self.problem(line, column, f"not a number: {text!r} (write 1000 or 0.5: no thousands separators, no units)")
            return None
        if not value.is_finite():
            self.problem(line, column, f"not a finite number: {text!r}")
            return None
        return value

    def limits(self, line: int, row: dict, prefix: str, suffix: str = "") -> dict | None:
        values = {n: self.number(line, row, f"{prefix}_{n}{suffix}") for n in LIMIT_NAMES}
        values = {k: v for k, v in values.items() if v is not None}
        return values or None


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split("|") if part.strip()]


def _entry(rows: _Rows, line: int, row: dict) -> dict:
    entry: dict = {k: row[k].strip() for k in ENTRY_TEXT if (row.get(k) or "").strip()}
    entry["care_areas"] = _list(row.get("care_areas"))
    if row.get("aliases"):
        entry["aliases"] = _list(row["aliases"])
    if (initial := rows.number(line, row, "initial_dose")) is not None:
        entry["initial_dose"] = initial
    source = (row.get("source") or "").strip()
    unsourced: dict[str, list[str]] = {}
    for item in _list(row.get("unsourced")):
        group, _, name = item.partition(".")
        if group not in (*LIMIT_GROUPS, "conc") or name not in LIMIT_NAMES:
            rows.problem(line, "unsourced", f"{item!r}: expected <group>.<limit>, e.g. dose.hard_max")
            continue
        unsourced.setdefault(group, []).append(name)
    for group, key in LIMIT_GROUPS.items():
        if (lim := rows.limits(line, row, group)) is not None:
            entry[key] = {
                **lim,
                **({"source": source} if source else {}),
                **({"unsourced": unsourced[group]} if group in unsourced else {}),
            }
    custom = (row.get("conc_custom") or "").strip().lower()
    if custom not in ("", "yes", "no", "true", "false", "1", "0"):
        rows.problem(line, "conc_custom", f"expected yes or no (got {custom!r})")
    conc: dict = {}
    if custom in ("yes", "true", "1"):
        conc["custom"] = True
    for column, key in (("conc_amount", "amount"), ("conc_volume_ml", "volume_ml")):
        if (value := rows.number(line, row, column)) is not None:
            conc[key] = value
    for column, key in (
        ("conc_amount_unit", "amount_unit"),
        ("conc_limits_unit", "limits_unit"),
        ("conc_source", "source"),
    ):
        if (row.get(column) or "").strip():
            conc[key] = row[column].strip()
    if (lim := rows.limits(line, row, "conc")) is not None:
        conc["limits"] = {**lim, **({"unsourced": unsourced["conc"]} if "conc" in unsourced else {})}
    if conc:
        entry["concentration"] = conc
    return entry


def _area(rows: _Rows, line: int, row: dict) -> dict:
    area: dict = {k: row[k].strip() for k in ("id", "name", "note") if (row.get(k) or "").strip()}
    if row.get("aliases"):
        area["aliases"] = _list(row["aliases"])
    if (weight := rows.limits(line, row, "weight", "_kg")) is not None:
        area["weight_kg"] = {
            **weight,
            **({"source": row["source"].strip()} if (row.get("source") or "").strip() else {}),
        }
    for column in ("max_rate_ml_h", "max_vtbi_ml"):
        if (value := rows.number(line, row, column)) is not None:
            area[column] = value
    return area


def import_csv(
    entries_csv: Path,
    care_areas_csv: Path,
    *,
    name: str,
    version: str,
    released: str,
    status: str = "draft",
    out_path: Path,
) -> tuple[str, LoadedLibrary]:
    """Build and validate a library from two CSV files; return (JSON text, validated library)."""
    entries = _Rows(Path(entries_csv), ENTRY_COLUMNS, ("id", "drug", "care_areas", "dose_unit"))
    areas = _Rows(Path(care_areas_csv), AREA_COLUMNS, ("id",))
    area_list = [(line, _area(areas, line, row)) for line, row in areas.rows]
    entry_list = [(line, _entry(entries, line, row)) for line, row in entries.rows]
    problems = areas.problems + entries.problems
    if entries.missing_required or areas.missing_required:
        # every row would repeat "missing" for that column: the header problem says it once
        raise LibraryInvalid(f"{entries_csv}, {care_areas_csv}", problems)
    data = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "released": released,
        "status": status,
        "note": f"imported from {Path(entries_csv).name} and {Path(care_areas_csv).name}",
        "care_areas": [a for _, a in area_list],
        "entries": [e for _, e in entry_list],
    }
    text = dump_json(data)
    try:
        loaded = load_library_bytes(text.encode("utf-8"), path=Path(out_path))
    except LibraryInvalid as exc:
        # All problems at once: the cells' and the library rules', minus rule problems on a
        # row whose cells were already reported (a bad number is missing to the rules).
        flagged = {(Path(p.json_path.split(" column ")[0]).name, p.line) for p in problems}
        mapped = [_to_csv(p, entries_csv, entry_list, care_areas_csv, area_list) for p in exc.problems]
        mapped = [m for m in mapped if (m.json_path.split(":")[0], m.line) not in flagged]
        raise LibraryInvalid(f"{entries_csv}, {care_areas_csv}", problems + mapped) from None
    if problems:
        raise LibraryInvalid(f"{entries_csv}, {care_areas_csv}", problems)
    return text, loaded


def _to_csv(p: LibraryProblem, entries_csv: Path, entry_list: list, areas_csv: Path, area_list: list) -> LibraryProblem:
    """Point a JSON-path problem back at the CSV row it came from."""
    for prefix, csv_path, rows in (("entries[", entries_csv, entry_list), ("care_areas[", areas_csv, area_list)):
        if p.json_path.startswith(prefix):
            index = int(p.json_path[len(prefix) :].split("]")[0])
            return LibraryProblem(f"{Path(csv_path).name}: {p.json_path}", p.message, rows[index][0])
    return LibraryProblem(p.json_path, p.message, None)


def dump_json(value: object, indent: int = 0) -> str:
    """JSON with ``Decimal`` written as exact numbers (``json`` would need floats)."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dump_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if all(isinstance(v, str) for v in value):
            return json.dumps(value, ensure_ascii=False)
        return "[\n" + ",\n".join(f"{inner}{dump_json(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)
