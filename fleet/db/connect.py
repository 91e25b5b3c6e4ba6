"""Open fleet connections: UTC session time zone (month partitions and reports are in UTC)."""

from __future__ import annotations

import psycopg

from fleet import FleetError


def connect(dsn: str, *, autocommit: bool = False, timeout_s: float = 5.0) -> psycopg.Connection:
    try:
        return psycopg.connect(
            dsn,
            autocommit=autocommit,
            connect_timeout=max(1, int(timeout_s)),
            options="-c timezone=UTC",
            application_name="pumpgw-fleet",
        )
    except psycopg.OperationalError as exc:
        raise FleetError(f"cannot connect to PostgreSQL ({_redacted(dsn)}): {str(exc).strip()[:300]}") from None


def _redacted(dsn: str) -> str:
    """The DSN without a password, for error messages."""
    import re

    dsn = re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", dsn)
