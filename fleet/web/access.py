"""Who is asking: session cookie or trusted proxy header -> (user, role); login, logout, CSRF.

Every page endpoint is wrapped by :meth:`Access.require` with the lowest role that may see it.
Every state-changing request is a POST whose form carries ``csrf_token``; a missing or wrong
token is refused with 403 before the handler runs. Failed logins are rate-limited per user
name and per client address, and every login outcome is an audit row.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import psycopg
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from fleet.web import audit
from fleet.web.auth import LoginLimiter, Signer, verify_password
from fleet.web.settings import Role, WebSettings

log = logging.getLogger("pumpgw.fleet.web")

SESSION_COOKIE = "fleet_session"
PRE_COOKIE = "fleet_pre"


@dataclass(frozen=True)
class Who:
    user: str
    role: Role
    csrf: str  # the token this user's forms must carry


def load_secret(settings: WebSettings) -> bytes:
    """The signing secret: from the file, the setting, or (loopback demo) a random one."""
    if settings.session_secret_file is not None:
        data = Path(settings.session_secret_file).read_bytes().strip()
        if len(data) < 32:
            raise ValueError(f"{settings.session_secret_file}: session secret shorter than 32 bytes")
        return data
    if settings.session_secret is not None:
        return settings.session_secret.encode()
    # Sessions then end with the process: fine for one instance; documented for several.
    return secrets.token_bytes(32)


class Access:
    def __init__(
        self, settings: WebSettings, audit_conn: Callable[[], AbstractContextManager[psycopg.Connection]]
    ) -> None:
        self.settings = settings
        self.signer = Signer(load_secret(settings), settings.session_max_age_s)
        self.limiter = LoginLimiter(settings.login_limits.max_failures, settings.login_limits.window_s)
        self._audit_conn = audit_conn

    # -- audit -----------------------------------------------------------------------
    def audit(self, kind: str, user: str, client: str, detail: dict[str, object] | None = None) -> None:
        with self._audit_conn() as conn:
            audit.append(conn, kind, user, client, detail)

    # -- identification ----------------------------------------------------------------
    @staticmethod
    def client(request: Request) -> str:
        return request.client.host if request.client else "?"

    def who(self, request: Request) -> Who | None:
        proxy = self.settings.proxy
        if proxy is not None and proxy.user_header in request.headers:
            if self.client(request) not in proxy.trusted_proxies:
                return None  # a client forging the header: ignored, see proxy_forged()
            entry = self.settings.user(request.headers[proxy.user_header].strip())
            if entry is None:
                return None
            # No cookie session in proxy mode: the CSRF token is bound to the user name.
            return Who(entry.name, entry.role_level, self.signer.csrf_token("proxy:" + entry.name))
        session = self.signer.check(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        entry = self.settings.user(session.user)
        if entry is None:
            return None
        return Who(entry.name, entry.role_level, self.signer.csrf_token(session.nonce))

    def proxy_forged(self, request: Request) -> bool:
        proxy = self.settings.proxy
        return (
            proxy is not None
            and proxy.user_header in request.headers
            and (self.client(request) not in proxy.trusted_proxies)
        )

    # -- CSRF ------------------------------------------------------------------------
    @staticmethod
    async def form(request: Request) -> dict[str, str]:
        """The urlencoded form (small: login and action forms only), first value per key."""
        body = await request.body()
        if len(body) > 8192:
            return {}
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    # -- login / logout ----------------------------------------------------------------
    def login_form_token(self, request: Request) -> tuple[str, str]:
        """(pre-session cookie, CSRF token for the login form); reuses a valid cookie."""
        cookie = request.cookies.get(PRE_COOKIE)
        nonce = self.signer.check_pre_session(cookie)
        if nonce is None:
            cookie = self.signer.pre_session()
            nonce = self.signer.check_pre_session(cookie)
        assert cookie is not None and nonce is not None
        return cookie, self.signer.csrf_token(nonce)

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=self.settings.tls
        )

    async def login(self, request: Request) -> tuple[Response | None, str | None]:
        """Handle POST /login: (response, error message for the form)."""
        form = await self.form(request)
        client = self.client(request)
        user = form.get("username", "")[:64]
        nonce = self.signer.check_pre_session(request.cookies.get(PRE_COOKIE))
        if not self.signer.csrf_ok(nonce, form.get("csrf_token")):
            self.audit("login_csrf_refused", user, client)
            return PlainTextResponse("403 Forbidden: missing or invalid CSRF token", status_code=403), None
        if self.limiter.locked(user, client):
            self.audit("login_locked_out", user, client)
            log.warning("fleet web: login refused, too many failures (user=%s client=%s)", user, client)
            return None, "Too many failed logins: try again later."
        entry = self.settings.user(user)
        if not verify_password(entry.password_hash if entry else None, form.get("password", "")):
            self.limiter.failed(user, client)
            self.audit("login_failed", user, client)
            log.warning("fleet web: failed login (user=%s client=%s)", user, client)
            return None, "Wrong user name or password."
        self.limiter.succeeded(user)
        self.audit("login", user, client)
        target = form.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # never redirect off-site
        response = RedirectResponse(target, status_code=303)
        self.set_cookie(response, SESSION_COOKIE, self.signer.issue(user), self.settings.session_max_age_s)
        response.delete_cookie(PRE_COOKIE, path="/")
        return response, None
