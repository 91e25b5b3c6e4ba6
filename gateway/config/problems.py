"""One configuration problem, told the way an editor and a biomedical engineer read it.

Rendered like a compiler diagnostic, ``ward.toml:42: pumps[3].link.baudrate: expected one of
...; got 9601``, so both a person and an editor's "jump to line" find the spot. Problems are
data first (file, line, column, key path, message, severity) and text second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.errors import ConfigError

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


@dataclass(frozen=True)
class ConfigProblem:
    """One error or warning found in a configuration file."""

    file: str
    key: KeyPath
    message: str
    line: int | None = None
    column: int | None = None
    severity: Severity = "error"
    related: tuple[str, ...] = field(default=())
    """Other places involved (e.g. the first definition of a duplicate), already rendered."""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {format_key(self.key)}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigFileError(ConfigError):
    """A configuration file is invalid; ``issues`` holds every problem found, in file order.

    ``problems`` (from :class:`ConfigError`) holds the same problems rendered as text.
    """

    def __init__(self, path: str, issues: list[ConfigProblem]) -> None:
        self.issues = issues
        super().__init__(path, [str(issue) for issue in issues])
