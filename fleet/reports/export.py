"""Rows to JSON-ready dicts and CSV text (shared by the HTTP API and the CLI)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_dicts(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [{f.name: _plain(getattr(r, f.name)) for f in dataclasses.fields(r)} for r in rows]


def to_json(rows: Sequence[Any]) -> str:
    return json.dumps(to_dicts(rows), indent=2, ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    # CSV injection: a cell starting with = + - @ is a formula in spreadsheet programs.
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


_NUMBER = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _is_number(text: str) -> bool:
    """A plain decimal literal (a negative count stays a number); not 'inf', 'nan', '-INFINITY'."""
    return _NUMBER.fullmatch(text) is not None


def to_csv(rows: Sequence[Any], row_type: type) -> str:
    names = [f.name for f in dataclasses.fields(row_type)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(names)
    for d in to_dicts(rows):
        writer.writerow([_cell(d[n]) for n in names])
    return out.getvalue()
