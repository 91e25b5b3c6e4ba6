"""A real, small file system for full-disk tests: a 4 MiB tmpfs mounted for the test.

Mounting needs CAP_SYS_ADMIN (root in the CI container); elsewhere the tests that use it are
skipped, saying why -- no full disk is faked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str = "4m"):
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(
            f"cannot mount a {size} tmpfs here ({result.stderr.strip() or result.returncode}); "
            f"full-disk tests need CAP_SYS_ADMIN"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(directory: Path, name: str = "filler") -> Path:
    """Fill the file system holding ``directory`` completely; returns the filler file."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 1):  # then the last partial blocks
            while True:
                try:
                    os.write(fd, b"\xaa" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return path


def free(directory: Path, filler: Path, nbytes: int) -> None:
    """Give ``nbytes`` back by shrinking the filler."""
    os.truncate(filler, max(0, filler.stat().st_size - nbytes))
