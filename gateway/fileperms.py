"""Files the daemon writes are private whatever the umask (design.md §2 inv. 7).

The outbox holds raw HL7 -- patient data -- and state files say which messages exist. Under
the usual umask 022 they would be world-readable (0644). Every file pumpgw creates is
therefore created with an explicit mode and tightened on open:

* ``0640`` (owner read/write, group read): the service user writes; members of its group
  (the operators allowed to run ``pumpgw outbox stats/list/show``) read; nobody else;
* an existing file with more permissions is reduced to ``0640`` when the daemon opens it,
  if the daemon owns it (a file owned by someone else is reported by ``check-config``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

PRIVATE_MODE = 0o640


def create_private(path: Path, mode: int = PRIVATE_MODE) -> None:
    """Create ``path`` empty with ``mode`` if it does not exist (umask cannot widen it).

    A full disk is left to the caller's own open, which reports it in its own terms."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return
        raise
    else:
        try:
            os.fchmod(fd, mode)  # O_CREAT's mode is and-ed with the umask; this is exact
        finally:
            os.close(fd)


def tighten(path: Path, mode: int = PRIVATE_MODE) -> None:
    """Remove permission bits beyond ``mode`` from a file we own; ignore files we do not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~mode:
        os.chmod(path, st.st_mode & 0o777 & mode)


def open_private(path: Path, mode: int = PRIVATE_MODE) -> int:
    """``os.open`` for writing a new file (truncating) with exactly ``mode``; returns the fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    return fd
