"""The fleet web UI: server-rendered pages (Jinja2) on Starlette, every page with CSV/JSON.

:func:`web_routes` returns the routes (and :func:`build_web_app` a stand-alone app) so the
fleet's HTTP app (fleet/http) can mount them beside its JSON API. Endpoints are plain ``def``:
Starlette runs them in its thread pool, where they borrow a psycopg connection from the pool.

No asset leaves the page: CSS is inline, charts are inline SVG, there is no JavaScript, and
the Content-Security-Policy forbids loading anything from anywhere else. How a page is rendered
(HTML, JSON, CSV) is :mod:`fleet.web.render`'s; this module routes, guards and acts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from fleet.web import audit, queries, trends
from fleet.web.access import PRE_COOKIE, SESSION_COOKIE, Access, Who
from fleet.web.auth import same_token
from fleet.web.queries import Page
from fleet.web.render import NAV, SECURITY_HEADERS, environment, page_csv, page_json
from fleet.web.settings import Role, WebSettings
from fleet.web.svg import bar_chart, heat_map, line_chart


class WebUI:
    def __init__(
        self, settings: WebSettings, pool: ConnectionPool, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.clock = clock or (lambda: datetime.now(UTC))
        self.access = Access(settings, pool.connection)
        self.env = environment()
        with pool.connection() as conn:
            audit.ensure_schema(conn)

    # -- rendering ----------------------------------------------------------------
    def render(self, request: Request, template: str, who: Who | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            who=who, nav=NAV, path=request.url.path, query=request.url.query, Role=Role, **ctx
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def respond(self, request: Request, who: Who, page: Page | None, template: str, **ctx: Any) -> Response:
        if page is None:
            return self.render(request, "not_found.html", who, status=404)
        fmt = request.query_params.get("format")
        if fmt == "json":
            return Response(json.dumps(page_json(page)), media_type="application/json", headers=SECURITY_HEADERS)
        if fmt == "csv":
            text = page_csv(page, request.query_params.get("table"))
            if text is None:
                return PlainTextResponse("404: no such table on this page", status_code=404)
            name = request.url.path.strip("/").replace("/", "-") or "region"
            return Response(
                text,
                media_type="text/csv",
                headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        return self.render(request, template, who, page=page, **ctx)

    def _days(self, request: Request, default: int) -> int:
        try:
            return max(1, min(3650, int(request.query_params.get("days", default))))
        except ValueError:
            return default

    # -- guard ----------------------------------------------------------------------
    def guarded(self, role: Role, handler: Callable[..., Response], *, post: bool = False):
        async def endpoint(request: Request) -> Response:
            if self.access.proxy_forged(request):
                await run_in_threadpool(self.access.audit, "proxy_header_untrusted", "-", self.access.client(request))
                return PlainTextResponse("403 Forbidden: identity header from an untrusted address", status_code=403)
            who = self.access.who(request)
            if who is None:
                if post:
                    return PlainTextResponse("403 Forbidden: not logged in", status_code=403)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            if who.role < role:
                return self.render(request, "forbidden.html", who, status=403, needed=role.name)
            form: dict[str, str] = {}
            if post:
                form = await self.access.form(request)
                if not same_token(form.get("csrf_token", ""), who.csrf):
                    await run_in_threadpool(
                        self.access.audit,
                        "csrf_refused",
                        who.user,
                        self.access.client(request),
                        {"path": request.url.path},
                    )
                    return PlainTextResponse("403 Forbidden: missing or invalid CSRF token", status_code=403)
            return (
                await run_in_threadpool(handler, request, who, form)
                if post
                else await run_in_threadpool(handler, request, who)
            )

        return endpoint

    # -- pages --------------------------------------------------------------------
    def region(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = queries.region(conn, self.clock())
        rows = page.tables["pumps_by_state"].rows
        chart = Markup(bar_chart([(str(a), float(n)) for a, n in rows], title="Pumps by state"))
        return self.respond(request, who, page, "region.html", chart=chart)

    def ward(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = queries.ward(conn, request.query_params.get("name", ""), self.clock())
        return self.respond(request, who, page, "ward.html")

    def pump(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            pp = request.path_params
            page = queries.pump(conn, pp["site"], pp["gateway"], pp["pump"])
        return self.respond(request, who, page, "pump.html")

    def uptake(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = trends.uptake(conn, self.clock(), request.query_params.get("version") or None)
        chart = Markup(
            line_chart(
                page.series,
                title=page.title,
                x_label="hours after release",
                y_label="% of pumps",
                y_max=100,
                markers=(80, 100),
            )
        )
        return self.respond(request, who, page, "uptake.html", chart=chart)

    def firmware(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = queries.firmware(conn)
        bars = [
            (f"{r['manufacturer']} {r['model']} fw {r['firmware']}", float(r["pumps"]))
            for r in page.tables["firmware"].as_dicts()
        ]
        return self.respond(
            request, who, page, "firmware.html", chart=Markup(bar_chart(bars, title="Pumps per model and firmware"))
        )

    def swaps(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = queries.swaps(conn, self.clock(), self._days(request, 90))
        return self.respond(request, who, page, "swaps.html")

    def not_seen(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = queries.not_seen(conn, self.clock(), self._days(request, self.settings.not_seen_days))
        return self.respond(request, who, page, "not_seen.html")

    def alarms(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = trends.alarm_load(conn, self.clock(), self._days(request, 7))
        rows = page.tables["ward_hour"].rows
        wards = sorted({r[0] for r in rows})
        cells = {(w, f"{h:02d}"): float(n) for w, h, n in rows}
        chart = heat_map(
            wards, [f"{h:02d}" for h in range(24)], cells, title="Alarm onsets per ward and hour (UTC)", cell=28
        )
        return self.respond(request, who, page, "alarms.html", chart=Markup(chart))

    def ders(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            page = trends.ders(conn, self.clock(), self._days(request, 30))
        return self.respond(request, who, page, "ders.html")

    def audit_page(self, request: Request, who: Who) -> Response:
        with self.pool.connection() as conn:
            rows = audit.recent(conn)
            broken = audit.verify_chain(conn)
        return self.render(request, "audit.html", who, rows=rows, broken=broken, held=self.access.limiter.held())

    # -- actions (POST, CSRF-checked by the guard) -----------------------------------
    def ack_alert(self, request: Request, who: Who, form: dict[str, str]) -> Response:
        alert_id = request.path_params["alert_id"]
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO web_alert_ack (alert_id, acked_by) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (alert_id, who.user),
            )
            conn.commit()
        self.access.audit("alert_acknowledged", who.user, self.access.client(request), {"alert_id": alert_id})
        back = form.get("next", "/")
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/", status_code=303)

    def unlock(self, request: Request, who: Who, form: dict[str, str]) -> Response:
        count = self.access.limiter.clear()
        self.access.audit("logins_unlocked", who.user, self.access.client(request), {"keys": count})
        return RedirectResponse("/admin/audit", status_code=303)

    def logout(self, request: Request, who: Who, form: dict[str, str]) -> Response:
        self.access.audit("logout", who.user, self.access.client(request))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- login ----------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        error = None
        if request.method == "POST":
            response, error = await self.access.login(request)
            if response is not None:
                return response
        cookie, token = self.access.login_form_token(request)
        nxt = request.query_params.get("next", "/")
        response = self.render(
            request,
            "login.html",
            None,
            status=200 if error is None else 401,
            csrf=token,
            error=error,
            next=nxt if nxt.startswith("/") else "/",
        )
        self.access.set_cookie(response, PRE_COOKIE, cookie, 3600)
        return response

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    def routes(self) -> list[Route]:
        g, v, ph, ad = self.guarded, Role.viewer, Role.pharmacy, Role.admin
        return [
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", g(v, self.logout, post=True), methods=["POST"]),
            Route("/", g(v, self.region)),
            Route("/ward", g(v, self.ward)),
            Route("/pumps/{site}/{gateway}/{pump}", g(v, self.pump)),
            Route("/uptake", g(v, self.uptake)),
            Route("/firmware", g(v, self.firmware)),
            Route("/swaps", g(v, self.swaps)),
            Route("/not-seen", g(v, self.not_seen)),
            Route("/alarms", g(v, self.alarms)),
            Route("/ders", g(v, self.ders)),
            Route("/alerts/{alert_id:int}/ack", g(ph, self.ack_alert, post=True), methods=["POST"]),
            Route("/admin/audit", g(ad, self.audit_page)),
            Route("/admin/unlock", g(ad, self.unlock, post=True), methods=["POST"]),
            Route("/healthz", self.health),
        ]


def build_web_app(
    settings: WebSettings, pool: ConnectionPool, clock: Callable[[], datetime] | None = None
) -> Starlette:
    ui = WebUI(settings, pool, clock)
    app = Starlette(routes=ui.routes())
    app.state.web = ui
    return app
