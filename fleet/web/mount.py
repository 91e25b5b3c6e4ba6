"""One ASGI app for the fleet: part 1's JSON/CSV API (``/api/...``) plus the web UI pages.

The API routes stay as part 1 built them; the UI adds its pages, login and actions. Both
run on the same connection pool. Access control covers the API too when ``web`` is
configured: a browser session or the trusted proxy header is needed for ``/api`` as for the
pages (the reports are the same data), except ``/api/health`` for monitoring.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet.http.app import build_app
from fleet.web.app import WebUI
from fleet.web.settings import Role, WebSettings


class _ApiGuard:
    """Refuses /api/* (except /api/health) without a session of at least ``viewer``."""

    def __init__(self, app: ASGIApp, ui: WebUI) -> None:
        self.app, self.ui = app, ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api") and scope["path"] != "/api/health":
            from starlette.requests import Request

            request = Request(scope)
            who = None if self.ui.access.proxy_forged(request) else self.ui.access.who(request)
            if who is None or who.role < Role.viewer:
                await PlainTextResponse("401 Unauthorized: log in at /login", status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_fleet_app(fleet_settings: Any, web: WebSettings, pool: Any) -> Starlette:
    app = build_app(fleet_settings, pool)
    ui = WebUI(web, pool)
    app.router.routes.extend(ui.routes())
    app.state.web = ui
    app.add_middleware(_ApiGuard, ui=ui)
    return app


def serve_fleet_app(fleet_settings: Any, web: WebSettings) -> None:
    """Serve UI + API with uvicorn on ``web.host:web.port`` (TLS when configured) until a signal."""
    import uvicorn
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        fleet_settings.database.dsn,
        min_size=1,
        max_size=8,
        open=True,
        kwargs={"options": "-c timezone=UTC", "application_name": "pumpgw-fleet-web"},
    )
    try:
        app = build_fleet_app(fleet_settings, web, pool)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=web.host,
                port=web.port,
                log_level="warning",
                lifespan="off",
                ssl_certfile=str(web.tls_cert) if web.tls_cert else None,
                ssl_keyfile=str(web.tls_key) if web.tls_key else None,
            )
        )
        server.run()  # returns on SIGTERM/SIGINT (uvicorn's own handlers)
    finally:
        pool.close()
