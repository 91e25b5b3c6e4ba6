"""Where the shipped files under ``config/`` are, installed or in a source checkout.

A wheel carries ``config/`` as ``gateway/_config`` (pyproject's force-include); an editable
install or a source tree has it beside the packages.
"""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    packaged = Path(__file__).parent / "_config"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "config"
