"""One problem in a file, told the way an editor and a biomedical engineer read it.

The gateway configuration, the drug library and the simulators' scenario files all report
problems with this one type, so a user sees the same shape everywhere. With a file name it is
rendered like a compiler diagnostic, ``ward.toml:42: pumps[3].link.baudrate: expected one of
...; got 9601``, so both a person and an editor's "jump to line" find the spot; inside an error
that already names the file (the drug library's refusals) it reads ``line 42: entries[3].x:
...``. Problems are data first (file, line, column, key path, message, severity) and text second.

Where a key was written comes from the position finders beside this module:
:func:`common.tomlpos.key_lines` (TOML) and :func:`common.jsonpos.value_lines` (JSON), both
``key path -> line``; :func:`line_for` looks a key up in either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

KeyPath = tuple[str | int, ...]
Severity = Literal["error", "warning"]


def format_key(path: KeyPath) -> str:
    """``("pumps", 3, "link", "baudrate")`` -> ``pumps[3].link.baudrate``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if part and all(c.isalnum() or c in "_-" for c in part) else f'"{part}"'
            out += ("." if out else "") + text
    return out


def line_for(lines: Mapping[KeyPath, int], key: KeyPath) -> int | None:
    """The line of ``key``, or of the nearest enclosing table, object or key that was written
    (a value pydantic names may be absent from the text, e.g. a missing key)."""
    key = tuple(key)
    for depth in range(len(key), -1, -1):
        if key[:depth] in lines:
            return lines[key[:depth]]
    return None


@dataclass(frozen=True)
class Problem:
    """One error or warning found in a file.

    ``key`` is a key path, or text when the place is not a key (``"(file)"``, ``"x.csv
    column dose"``); ``file`` may be empty when the enclosing error names the file.
    """

    file: str
    key: KeyPath | str
    message: str
    line: int | None = None
    column: int | None = None
    severity: Severity = "error"
    related: tuple[str, ...] = field(default=())
    """Other places involved (e.g. the first definition of a duplicate), already rendered."""

    @property
    def key_text(self) -> str:
        return self.key if isinstance(self.key, str) else format_key(self.key)

    def __str__(self) -> str:
        key = self.key_text
        if not self.file:
            where = f"line {self.line}: " if self.line else ""
            return f"{where}{key}: {self.message}" if key else f"{where}{self.message}"
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"
