"""Opening the gateway database read-only for operator commands (inventory, audit).

``mode=ro``: the command never writes, never migrates, and works for an operator account
that may only read the file, while the daemon keeps writing (SQLite WAL).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import PumpgwError

if TYPE_CHECKING:
    from gateway.config.model import GatewayConfig


class DatabaseUnavailable(PumpgwError):
    pass


def database_path(db: Path | None, config: Path | None) -> tuple[Path, GatewayConfig | None]:
    """(path, config or None) from ``--db`` or ``--config``; ConfigError propagates."""
    if db is not None:
        return Path(db), None
    assert config is not None, "the command's parser requires --db or --config"
    from gateway.config import load_config

    cfg = load_config(config)
    return Path(cfg.outbox.path), cfg


def open_readonly(path: Path, table: str) -> sqlite3.Connection:
    if not path.exists():
        raise DatabaseUnavailable(f"gateway database {path} does not exist")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0, isolation_level=None)
        conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(
            f"gateway database {path}: cannot read {table} ({exc}); has a pumpgw with traceability run on it?"
        ) from None
    return conn
