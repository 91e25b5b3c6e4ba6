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


def shipped_dir(name: str) -> Path:
    """A folder shipped in the wheel as ``gateway/_<name>`` (``systemd``, ``docs``), or the
    source checkout's ``<name>/``."""
    packaged = Path(__file__).parent / f"_{name}"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


def shipped_file(name: str) -> Path:
    """A top-level file (LICENSE, CHANGELOG.md, README.md, constraints.txt) shipped in ``_docs``."""
    packaged = Path(__file__).parent / "_docs" / name
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / name
