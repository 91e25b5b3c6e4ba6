"""Who an operator is, for audit rows written by the ``pumpgw`` command."""

from __future__ import annotations

import os
import pwd


def login_name() -> str:
    """The OS account running the command (from the password database, not from $USER, which
    anyone can set); ``uid:<n>`` for an account without a name."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"
