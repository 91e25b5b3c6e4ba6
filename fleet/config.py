"""fleet.toml: broker, database, collector batching and HTTP listener (docs/fleet.md).

Validated by pydantic with unknown keys refused, so a typo is an error naming the key and
the file instead of a silently ignored setting.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet import FleetConfigError
from fleet.web.settings import WebSettings


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Model):
    dsn: str = Field(
        default="dbname=pumpgw_fleet", description="libpq connection string or URI of the PostgreSQL database."
    )


class MqttSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(
        default="pumpgw-fleet", min_length=1, description="Fixed: the broker keeps this persistent session."
    )
    topic_prefix: str = "pumpgw/v1"
    username: str = ""
    password_file: str = ""
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    shared_group: str = Field(default="", description="Subscribe as $share/<group>/...: instances share the load.")
    sites: list[str] = Field(default_factory=list, description="Only these sites (partition instances by site).")
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    tls: bool = False


class CollectorSettings(_Model):
    batch_max: int = Field(default=500, ge=1, le=100_000, description="Messages per PostgreSQL transaction at most.")
    batch_wait_ms: int = Field(default=50, ge=0, le=10_000, description="Longest a message waits for its batch.")
    retry_max_s: float = Field(default=10.0, gt=0, description="Cap of the backoff while PostgreSQL is away.")


class HttpSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class FleetSettings(_Model):
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    collector: CollectorSettings = CollectorSettings()
    http: HttpSettings = HttpSettings()
    # issue 22: the web UI; when present, UI and API are served together on [web]'s listener
    # (TLS beyond loopback) and the API needs a login too (docs/fleet.md, "The web UI").
    web: WebSettings | None = None


def load_settings(path: str | Path) -> FleetSettings:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return FleetSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise FleetConfigError(f"{p}: {problems}") from None
