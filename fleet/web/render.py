"""How a page leaves the server: HTML from the Jinja2 templates, or its tables as JSON or CSV.

The same :class:`~fleet.web.queries.Page` answers all three (``?format=json|csv``), so what is
on screen and what is exported cannot differ. CSV cells that a spreadsheet would run as a
formula are neutralised; every response carries :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape

from fleet.web.queries import Page

TEMPLATES = Path(__file__).with_name("templates")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

NAV = [
    ("/", "Region"),
    ("/uptake", "Library uptake"),
    ("/firmware", "Firmware"),
    ("/swaps", "Swaps"),
    ("/not-seen", "Not seen"),
    ("/alarms", "Alarm load"),
    ("/ders", "DERS"),
]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def page_json(page: Page) -> dict[str, Any]:
    return {
        "title": page.title,
        "numbers": {k: _plain(v) for k, v in page.numbers.items()},
        "tables": {n: [{k: _plain(v) for k, v in row.items()} for row in t.as_dicts()] for n, t in page.tables.items()},
    }


def page_csv(page: Page, table: str | None) -> str | None:
    name = table or next(iter(page.tables), None)
    if name is None or name not in page.tables:
        return None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(page.tables[name].columns)
    for row in page.tables[name].rows:
        # Neutralise spreadsheet formulas in field strings (CSV injection, OWASP).
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else _plain(v) for v in row])
    return out.getvalue()


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "" if value is None else str(value)


def _age(seconds: Any) -> str:
    if seconds is None:
        return "never"
    s = float(seconds)
    for limit, unit, div in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if s < limit:
            return f"{int(s // div)} {unit}"
    return f"{int(s // 86400)} d"


def _api_link(report: str, params: dict[str, Any], csv: bool = False) -> str:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    return f"/api/{report}{'.csv' if csv else ''}{'?' + query if query else ''}"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["when"] = _when
    env.filters["age"] = _age
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals.update(zip=zip, dict=dict, api_link=_api_link)
    return env
