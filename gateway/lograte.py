"""Per-source log rate limiting: the first line, then one summary per window.

Why: one pump rack sending garbage produced ~170 WARNING lines a second; journald's own
rate limit (``RateLimitBurst=``) then dropped the daemon's *later* lines -- including the
ones that mattered. Limiting at the source keeps the journal readable and leaves journald's
budget for what is new.

Rule (docs/operations.md, "Log rate limiting"):

* records are grouped by *source*: logger name, level, message template, and the first
  argument or the ``pump``/``link``/``lane``/``receiver``/``source`` field (a sender's
  ``lane``, a link's name) -- so one noisy link never silences another;
* the first record of a group passes; further ones within ``window_s`` are counted, not
  written; when the window has passed, a summary line says how many were suppressed
  ("N more like this from <source> in the last 60 s") and the group starts over;
* only WARNING is limited -- that is where floods come from (a device sending garbage, a
  receiver refusing every message). **ERROR and CRITICAL are never limited**: alarms that
  could not be delivered, data loss, quarantines and refusals must all reach the journal
  (design.md §2 inv. 2 and 6). INFO is the daemon's narrative (start, reload, reconnect), one
  line per state change, and a second reload must not vanish into a count; DEBUG (and WIRE)
  are opt-in troubleshooting, kept whole.

A logging.Filter on the root handler, so every logger (stdlib or structlog) goes through it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

_SOURCE_KEYS = ("pump", "pump_id", "link", "lane", "receiver", "source", "topic")
_MAX_GROUPS = 4096  # bounded memory even if sources are unbounded


class _Group:
    __slots__ = ("started", "suppressed", "source", "level", "name")

    def __init__(self, started: float, source: str, level: int, name: str) -> None:
        self.started = started
        self.suppressed = 0
        self.source = source
        self.level = level
        self.name = name


def _source_and_template(record: logging.LogRecord) -> tuple[str, str]:
    msg: Any = record.msg
    if isinstance(msg, dict):  # a structlog event dict (ProcessorFormatter.wrap_for_formatter)
        for key in _SOURCE_KEYS:
            if msg.get(key) not in (None, ""):
                return str(msg[key]), str(msg.get("event", ""))
        return "", str(msg.get("event", ""))
    for key in _SOURCE_KEYS:
        value = getattr(record, key, None)
        if value not in (None, ""):
            return str(value), str(msg)
    args = record.args
    first = args[0] if isinstance(args, tuple) and args else ""
    return (str(first) if isinstance(first, str) else ""), str(msg)


class RateLimitFilter(logging.Filter):
    """First occurrence plus a periodic summary per source; never limits ERROR and above."""

    def __init__(
        self,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[logging.LogRecord], object] | None = None,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._emit = emit
        self._groups: dict[tuple[str, int, str, str], _Group] = {}
        self._lock = threading.Lock()
        self._next_scan = 0.0
        self.suppressed_total = 0

    def bind(self, emit: Callable[[logging.LogRecord], object]) -> None:
        """Where summary records go (the handler's ``handle``)."""
        self._emit = emit

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_pumpgw_summary", False) or not logging.WARNING <= record.levelno < logging.ERROR:
            return True  # only WARNING is limited (see the module docstring)
        now = self._clock()
        source, template = _source_and_template(record)
        key = (record.name, record.levelno, template, source)
        due: list[_Group] = []
        with self._lock:
            group = self._groups.get(key)
            passes = group is None or now - group.started >= self.window_s
            if group is not None and not passes:
                group.suppressed += 1
                self.suppressed_total += 1
            due = self._take_due(now, keep=key if passes else None)
            if passes:
                if len(self._groups) >= _MAX_GROUPS:
                    self._groups.pop(next(iter(self._groups)))
                self._groups[key] = _Group(now, source, record.levelno, record.name)
        for g in due:
            self._summarise(g)
        return passes

    def flush(self) -> None:
        """Write the summaries of every group with suppressed lines (at shutdown)."""
        with self._lock:
            due = [g for g in self._groups.values() if g.suppressed]
            self._groups.clear()
        for g in due:
            self._summarise(g)

    def _take_due(self, now: float, keep: tuple[str, int, str, str] | None) -> list[_Group]:
        due: list[_Group] = []
        if keep is not None:  # its window has passed: summarise it before its next first line
            group = self._groups.pop(keep, None)
            if group is not None and group.suppressed:
                due.append(group)
        if now < self._next_scan:  # scan for quiet groups at most once a second
            return due
        self._next_scan = now + 1.0
        for key, group in list(self._groups.items()):
            if now - group.started >= self.window_s:
                del self._groups[key]
                if group.suppressed:
                    due.append(group)
        return due

    def _summarise(self, group: _Group) -> None:
        if self._emit is None:
            return
        where = f" from {group.source}" if group.source else ""
        record = logging.LogRecord(
            group.name,
            group.level,
            __file__,
            0,
            "%d more like the previous line%s in the last %g s (rate limited)",
            (group.suppressed, where, self.window_s),
            None,
        )
        record._pumpgw_summary = True
        self._emit(record)
