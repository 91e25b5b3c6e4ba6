"""The delivery journal: an append-only file beside the outbox (``<outbox>-delivered``) with
one line per delivery recorded but not yet applied to its message row.

Why a file and not a row: a delivered message must be on record before the next one is sent
(after a crash only the message in flight may be sent again, design.md §2 inv. 2). A SQLite
commit of even one small row writes a 4 KiB WAL frame: 14 us of CPU but 70-140 us of wall
time on a machine whose disk is busy (the kernel throttles processes that dirty pages). One
``write(2)`` of a ~40-byte line costs 2-5 us and survives a process crash the same way as a
``synchronous=NORMAL`` commit does (it is in the kernel once the call returns). Like such a
commit it is not synced: on power loss the tail may be lost (or read back as garbage, which
ends the reading), and those messages are sent again -- at-least-once, identical bytes
(docs/integration-engineer.md, "Delivery guarantees").

The journal is applied to the rows in the sender's next batch transaction, then emptied.
Applying a line twice (a crash between that commit and the truncation) writes the same
values again: harmless. Opening the outbox applies whatever a crash left, to rows whose id
*and* control id (MSH-10) match the line: a journal left beside an outbox file that was moved
aside and replaced (ids start again at 1) marks nothing in the new file delivered.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from gateway.fileperms import PRIVATE_MODE
from gateway.log import get_logger

log = get_logger("pumpgw.outbox")


def journal_path(outbox_path: Path) -> Path:
    return Path(f"{outbox_path}-delivered")


class DeliveryJournal:
    def __init__(self, outbox_path: Path) -> None:
        self.path = journal_path(outbox_path)
        # 0640 like the outbox whatever the umask (the ACK text may be peer text)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_MODE)
        os.fchmod(self._fd, PRIVATE_MODE)
        self._size = os.fstat(self._fd).st_size

    def append(self, rows: list[tuple[str, tuple]]) -> None:
        """Record deliveries given as (control id, FINISH row: state, state_at, reason,
        ack_text, attempts, extra, id): one write; on failure the file is cut back."""
        data = b"".join(_line(cid, r) for cid, r in rows)
        try:
            done = os.write(self._fd, data)
            while done < len(data):  # a short write (rare on a regular file): finish it
                done += os.write(self._fd, data[done:])
        except OSError:
            try:
                os.ftruncate(self._fd, self._size)  # no torn line before the next append
            except OSError:
                pass
            raise
        self._size += len(data)

    def clear(self) -> None:
        """Empty the journal once its lines are applied (committed) to the rows."""
        if self._size:
            try:
                os.ftruncate(self._fd, 0)
            except OSError as exc:  # the lines are applied again at the next start: harmless
                log.warning(
                    "outbox delivery journal not emptied",
                    path=str(self.path),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
                return
            self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def read(outbox_path: Path) -> list[tuple]:
    """The RECOVER_SQL rows in the journal of ``outbox_path`` (none if there is no journal);
    the reading stops at the first line that is not whole (a power loss's torn tail)."""
    try:
        data = journal_path(outbox_path).read_bytes()
    except FileNotFoundError:
        return []
    rows = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is not a whole line
        try:
            msg_id, state_at, attempts, extra, cid, ack_text = line.decode("ascii").split("\t", 5)
            rows.append((float(state_at), _text(ack_text), int(attempts), int(extra), int(msg_id), _text(cid)))
        except (ValueError, SyntaxError):
            log.warning("outbox delivery journal: unreadable line; the rest is ignored", good_lines=len(rows))
            break
    return rows


def _line(cid: str, row: tuple) -> bytes:
    """One line; texts as ``ascii()`` literals (no tab, newline or non-ASCII byte survives)."""
    return f"{row[6]}\t{row[1]!r}\t{row[4]}\t{row[5]}\t{ascii(cid)}\t{ascii(row[3])}\n".encode("ascii")


def _text(literal: str) -> str:
    value = ast.literal_eval(literal)
    if not isinstance(value, str):
        raise ValueError(f"not a text literal: {literal[:20]!r}")
    return value
