"""Starlette app factory: every report as JSON (``/api/{name}``) and CSV (``/api/{name}.csv``).

``build_app(settings, pool_or_dsn)``: ``pool_or_dsn`` is a DSN string (one short read-only
connection per request) or anything with a psycopg_pool-style ``connection()`` context manager.
Reports are synchronous SQL, run in Starlette's thread pool so the event loop stays free.
Issue 22 mounts HTML pages and authentication on the app this returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fleet import FleetError
from fleet.config import FleetSettings
from fleet.db.connect import connect
from fleet.reports import REPORTS, ReportSpec
from fleet.reports.export import to_csv, to_dicts


class BadParameter(FleetError):
    pass


def parse_params(spec: ReportSpec, query: dict[str, str]) -> dict[str, Any]:
    """Typed keyword arguments of a report from strings (query string or CLI), or a named error."""
    out: dict[str, Any] = {}
    for key, raw in query.items():
        kind = spec.params.get(key)
        if kind is None:
            raise BadParameter(f"report {spec.name!r} has no parameter {key!r} (has: {sorted(spec.params) or 'none'})")
        if kind is float:
            try:
                value = float(raw)
            except ValueError:
                raise BadParameter(
                    f"parameter {key!r} of report {spec.name!r} must be a number, got {raw[:40]!r}"
                ) from None
            if not 0 <= value < 1e6:
                raise BadParameter(f"parameter {key!r} of report {spec.name!r} is out of range: {raw[:40]!r}")
            out[key] = value
        else:
            out[key] = raw[:200]
    return out


def build_app(settings: FleetSettings | None, pool_or_dsn: Any) -> Starlette:
    @contextlib.contextmanager
    def connection() -> Iterator[psycopg.Connection]:
        if isinstance(pool_or_dsn, str):
            conn = connect(pool_or_dsn, autocommit=True)
            try:
                yield conn
            finally:
                conn.close()
        else:
            with pool_or_dsn.connection() as conn:
                yield conn

    def run(spec: ReportSpec, params: dict[str, Any]) -> list[Any]:
        with connection() as conn:
            return spec.function(conn, **params)

    async def report(request: Request) -> Response:
        name = request.path_params["name"]
        as_csv = name.endswith(".csv")
        name = name.removesuffix(".csv")
        spec = REPORTS.get(name)
        if spec is None:
            return JSONResponse({"error": f"no report named {name!r}", "reports": sorted(REPORTS)}, status_code=404)
        try:
            rows = await run_in_threadpool(run, spec, parse_params(spec, dict(request.query_params)))
        except BadParameter as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except (FleetError, psycopg.OperationalError) as exc:
            return JSONResponse({"error": f"database unavailable: {str(exc)[:200]}"}, status_code=503)
        if as_csv:
            return Response(
                to_csv(rows, spec.row),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        return JSONResponse({"report": name, "title": spec.title, "rows": to_dicts(rows)})

    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "reports": [
                    {
                        "name": s.name,
                        "title": s.title,
                        "params": sorted(s.params),
                        "json": f"/api/{s.name}",
                        "csv": f"/api/{s.name}.csv",
                    }
                    for s in REPORTS.values()
                ]
            }
        )

    async def health(request: Request) -> Response:
        def ping() -> None:
            with connection() as conn:
                conn.execute("SELECT 1")

        try:
            await run_in_threadpool(ping)
        except (FleetError, psycopg.Error) as exc:
            return JSONResponse({"database": "unavailable", "error": str(exc)[:200]}, status_code=503)
        return JSONResponse({"database": "ok"})

    app = Starlette(
        routes=[
            Route("/api", index),
            Route("/api/health", health),
            Route("/api/{name}", report),
        ]
    )
    app.state.settings = settings
    app.state.connection = connection
    return app
