"""What every sub-command shares: how the configuration is named, how usage errors look.

One way to name the configuration everywhere: ``pumpgw COMMAND FILE`` or
``pumpgw COMMAND --config FILE`` (both accepted, in any position among the options), so an
operator never has to remember which command wants which form.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.errors import BadInput

DEFAULT_CONFIG = Path("/etc/pumpgw/gateway.toml")


class UsageError(BadInput):
    """A command line that cannot be acted on; ``pumpgw`` prints it and exits 2."""


def add_config_argument(parser: argparse.ArgumentParser, *, required: bool = True, help_: str | None = None) -> None:
    """A positional FILE and ``--config FILE`` naming the same thing (read with :func:`config_path`)."""
    text = help_ or "gateway configuration (TOML), e.g. /etc/pumpgw/gateway.toml"
    parser.add_argument("config_file", nargs="?", metavar="FILE", type=Path, help=text)
    parser.add_argument("--config", dest="config_option", metavar="FILE", type=Path, help="the same, as an option")
    parser.set_defaults(config_required=required)


def config_path(args: argparse.Namespace) -> Path | None:
    """The configuration named by FILE or --config; a usage error if both differ or it is required and absent."""
    given = [p for p in (getattr(args, "config_file", None), getattr(args, "config_option", None)) if p is not None]
    if len(given) == 2 and given[0] != given[1]:
        raise UsageError(f"two configurations given ({given[0]} and --config {given[1]}); give one")
    if not given:
        if getattr(args, "config_required", False):
            raise UsageError("no configuration given: pass FILE or --config FILE (e.g. /etc/pumpgw/gateway.toml)")
        return None
    return given[0]


def add_database_options(
    parser: argparse.ArgumentParser, *, suppress: bool, db_help: str = "gateway database (the outbox file)"
) -> None:
    """``--db PATH`` / ``--config FILE`` for commands with actions (``outbox``, ``audit``): add them
    to the group parser and (``suppress=True``) to each action's parser too, so they are
    accepted before or after the action; the actions' defaults are suppressed so a value given
    before the action is not overwritten. Read with :func:`database_option`."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--db", type=Path, default=default, help=db_help)
    parser.add_argument(
        "--config", type=Path, default=default, metavar="FILE", help="gateway configuration; uses its [outbox] path"
    )


def database_option(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(db, config): exactly one of them, or a usage error."""
    db, config = getattr(args, "db", None), getattr(args, "config", None)
    if (db is None) == (config is None):
        raise UsageError("give the database with exactly one of --db PATH or --config FILE")
    return db, config
