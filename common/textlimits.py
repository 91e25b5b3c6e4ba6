"""Limits checked on a configuration or library file *before* it is parsed.

Why before: Python's ``json`` and ``tomllib`` parse nesting recursively, so a file of 100,000
``[`` raises ``RecursionError`` (not a parse error) from inside the parser, and a multi-GB
file would be read into memory whole. No real configuration or drug library nests more than
a handful of levels or comes near a few MiB, so generous fixed limits cost nothing and turn
those files into an ordinary "refused, here is why and where" error of the loader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common.errors import BadInput

MAX_DEPTH = 64
"""Nesting of arrays/tables/objects; real files use fewer than 8."""

NAME_MAX = 255
PATH_MAX = 4095
"""Linux limits (bytes) for one path component and a whole path."""


@dataclass(frozen=True)
class TooDeep:
    depth: int
    line: int
    column: int

    def __str__(self) -> str:
        return f"nested more than {MAX_DEPTH} levels deep at line {self.line}, column {self.column}"


class FileTooLarge(BadInput):
    """The file is larger than the loader reads: refused before parsing."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"file is larger than {limit // 1024} KiB")


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The file's bytes, or :class:`FileTooLarge` without reading more than ``limit + 1``."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(len(data), limit)
    return data


def path_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be opened on Linux whatever the file system holds, or None."""
    raw = os.fsencode(path)
    if len(raw) > PATH_MAX:
        return f"path too long ({len(raw)} bytes; at most {PATH_MAX})"
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > NAME_MAX:
        return f"path has a name of {longest} bytes (at most {NAME_MAX} per name)"
    return None


def json_too_deep(text: str, limit: int = MAX_DEPTH) -> TooDeep | None:
    """The first place a JSON text nests deeper than ``limit`` (strings skipped)."""
    depth, line, line_start, in_string, escaped = 0, 1, 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return TooDeep(depth, line, i - line_start + 1)
        elif ch in "]}":
            depth -= 1
        if ch == "\n":
            line, line_start = line + 1, i + 1
    return None


def toml_too_deep(text: str, limit: int = MAX_DEPTH) -> TooDeep | None:
    """The first place a TOML text nests arrays/inline tables deeper than ``limit``.

    Strings (basic, literal, multi-line) and comments are skipped; a malformed string just
    ends the scan early -- tomllib reports it properly afterwards.
    """
    depth, line, line_start, i, n = 0, 1, 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, line_start = line + 1, i + 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch in "\"'":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            j = i + len(quote)
            while True:
                j = text.find(quote, j)
                if j < 0:
                    return None
                if quote[0] == '"' and _escaped(text, j):
                    j += 1
                    continue
                break
            line += text.count("\n", i, j)
            if "\n" in text[i:j]:
                line_start = text.rfind("\n", i, j) + 1
            i = j + len(quote)
            continue
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return TooDeep(depth, line, i - line_start + 1)
        elif ch in "]}":
            depth = max(0, depth - 1)
        i += 1
    return None


def _escaped(text: str, at: int) -> bool:
    backslashes = 0
    while at - backslashes - 1 >= 0 and text[at - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1
