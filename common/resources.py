"""Where the shipped files under ``config/`` (and ``systemd/``, ``docs/``) are, installed or in
a source checkout.

A wheel carries them inside the ``gateway`` package as ``gateway/_config``, ``gateway/_systemd``
and ``gateway/_docs`` (pyproject's force-include); an editable install or a source tree has
them beside the packages. This module lives in ``common`` so the simulators find the example
drug library without importing the daemon; it only computes paths.
"""

from __future__ import annotations

from pathlib import Path

_SITE = Path(__file__).resolve().parent.parent  # site-packages, or the source checkout
_PACKAGED = _SITE / "gateway"  # where the wheel puts the shipped folders (pyproject force-include)


def config_dir() -> Path:
    packaged = _PACKAGED / "_config"
    if packaged.is_dir():
        return packaged
    return _SITE / "config"


def shipped_dir(name: str) -> Path:
    """A folder shipped in the wheel as ``gateway/_<name>`` (``systemd``, ``docs``), or the
    source checkout's ``<name>/``."""
    packaged = _PACKAGED / f"_{name}"
    if packaged.is_dir():
        return packaged
    return _SITE / name


def shipped_file(name: str) -> Path:
    """A top-level file (LICENSE, CHANGELOG.md, README.md, constraints.txt) shipped in ``_docs``."""
    packaged = _PACKAGED / "_docs" / name
    if packaged.is_file():
        return packaged
    return _SITE / name
