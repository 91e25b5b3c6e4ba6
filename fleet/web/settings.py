"""The web UI's settings: bind address, TLS, users and roles, sessions, proxy-header mode.

A ``[web]`` table of the fleet's TOML file (or its own file): pydantic with ``extra="forbid"`` so
a misspelt key fails with its name. The rule "TLS when bound beyond loopback" is checked here,
at load time, so a misconfigured UI never starts listening in clear text on the ward network.
"""

from __future__ import annotations

import ipaddress
import tomllib
from enum import IntEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class Role(IntEnum):
    """Ordered: a higher role can do everything a lower one can."""

    viewer = 1
    pharmacy = 2
    admin = 3


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: str = Field(pattern="^(viewer|pharmacy|admin)$")
    # An argon2 PHC string from `pumpgw fleet passwd`; absent for proxy-only users.
    password_hash: str | None = Field(default=None, pattern=r"^\$argon2(id|i|d)\$")

    @property
    def role_level(self) -> Role:
        return Role[self.role]


class ProxyMode(BaseModel):
    """Reverse-proxy header mode: a trusted proxy (e.g. the hospital's SSO front end) has
    authenticated the user and names them in a header. Only requests whose TCP peer is one of
    ``trusted_proxies`` may use the header; the user must still be in ``users`` (roles stay here).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_header: str = "X-Remote-User"
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])


class LoginLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_failures: int = Field(default=5, ge=1)
    window_s: float = Field(default=900.0, gt=0)


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Secret for signing session and CSRF tokens; a file keeps it out of the config and lets
    # several fleet instances behind one load balancer accept each other's sessions.
    session_secret_file: Path | None = None
    session_secret: str | None = Field(default=None, min_length=32)
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    users: list[UserEntry] = Field(default_factory=list)
    proxy: ProxyMode | None = None
    login_limits: LoginLimits = Field(default_factory=LoginLimits)
    not_seen_days: int = Field(default=7, ge=1)

    @model_validator(mode="after")
    def _check(self) -> WebSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("web.tls_cert and web.tls_key must be given together")
        if not is_loopback(self.host) and self.tls_cert is None:
            raise ValueError(
                f"web.host = {self.host!r} is beyond loopback: set web.tls_cert and web.tls_key "
                "(or bind 127.0.0.1 behind a TLS reverse proxy, see docs/fleet.md)"
            )
        names = [u.name for u in self.users]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"web.users: duplicate user name(s) {', '.join(dupes)}")
        if self.proxy is None:
            for user in self.users:
                if user.password_hash is None:
                    raise ValueError(f"web.users: user {user.name!r} has no password_hash (needed without web.proxy)")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def user(self, name: str) -> UserEntry | None:
        return next((u for u in self.users if u.name == name), None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebSettingsError(Exception):
    """The [web] settings are unusable; the message names the file and key."""


def load_web_settings(path: Path) -> WebSettings:
    """Read the ``[web]`` table of a TOML file (the whole file if it has no such table)."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise WebSettingsError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WebSettingsError(f"{path}: {exc}") from None
    table = data.get("web", data)
    try:
        return WebSettings.model_validate(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "web"
        raise WebSettingsError(f"{path}: web.{where}: {first['msg']}") from None
