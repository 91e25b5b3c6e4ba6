"""Where each key of a TOML document was written: key path -> line number.

``tomllib`` returns plain dicts without positions, yet a biomedical engineer needs "line 42"
to find ``pumps[3].link.baudrate`` in a 300-line ward file. This module re-reads the text
that ``tomllib`` has already accepted and records, for every table header (``[mqtt]``),
array-of-tables entry (``[[pumps]]``), key (plain, dotted or quoted), inline-table key and
array element, the 1-based line it starts on.

It is a scanner, not a second TOML parser: values are skipped, never decoded (except quoted
keys). The first occurrence of a path wins, which for valid TOML is its only definition. If
the scanner meets something it does not understand it stops and returns what it has found:
a missing line number degrades an error message, it never hides the error.
"""

from __future__ import annotations

import bisect
import tomllib

from common.diagnostics import KeyPath as Path

_BARE_KEY = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = set(",]}\n#")


class _Stop(Exception):
    """The text is not shaped as the scanner expects; keep what was found so far."""


def key_lines(text: str) -> dict[Path, int]:
    """Map every key path written in ``text`` to the line (1-based) it starts on.

    Paths use list indices for arrays: ``("pumps", 3, "link", "baudrate")``.
    """
    scanner = _Scanner(text)
    try:
        scanner.document()
    except (_Stop, IndexError):
        pass
    return scanner.found


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[Path, int] = {}
        self.aot_counts: dict[Path, int] = {}
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    # -- helpers -------------------------------------------------------------------

    def line(self, pos: int | None = None) -> int:
        return bisect.bisect_left(self._newlines, self.pos if pos is None else pos) + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def record(self, path: Path, line: int) -> None:
        self.found.setdefault(path, line)

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces and tabs, comments, and (if asked) line breaks."""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self.pos += 1
            elif ch == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def expect(self, s: str) -> None:
        if not self.text.startswith(s, self.pos):
            raise _Stop
        self.pos += len(s)

    # -- structure -----------------------------------------------------------------

    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            line = self.line()
            if self.peek(2) == "[[":
                self.pos += 2
                keys = self.key()
                self.skip_blank(newlines=False)
                self.expect("]]")
                parent = self.resolve(keys[:-1])
                array = parent + (keys[-1],)
                index = self.aot_counts.get(array, 0)
                self.aot_counts[array] = index + 1
                self.record(array, line)
                table = array + (index,)
                self.record(table, line)
            elif self.peek() == "[":
                self.pos += 1
                table = self.resolve(self.key())
                self.skip_blank(newlines=False)
                self.expect("]")
                self.record(table, line)
            else:
                self.key_value(table)

    def resolve(self, keys: list[str]) -> Path:
        """Turn header keys into a path, stepping into the latest entry of each array of tables."""
        path: Path = ()
        for key in keys:
            path += (key,)
            if path in self.aot_counts:
                path += (self.aot_counts[path] - 1,)
        return path

    def key_value(self, table: Path) -> None:
        line = self.line()
        keys = self.key()
        for depth in range(1, len(keys) + 1):
            self.record(table + tuple(keys[:depth]), line)
        self.skip_blank(newlines=False)
        self.expect("=")
        self.skip_blank(newlines=False)
        self.value(table + tuple(keys))

    def key(self) -> list[str]:
        """A dotted key: simple keys separated by '.', with optional blanks around the dots."""
        keys: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            ch = self.peek()
            if ch in ('"', "'"):
                start = self.pos
                self.string()
                keys.append(tomllib.loads("k = " + self.text[start : self.pos])["k"])
            else:
                start = self.pos
                while self.pos < len(self.text) and self.text[self.pos] in _BARE_KEY:
                    self.pos += 1
                if self.pos == start:
                    raise _Stop
                keys.append(self.text[start : self.pos])
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return keys
            self.pos += 1

    # -- values --------------------------------------------------------------------

    def value(self, path: Path) -> None:
        ch = self.peek()
        if ch == "{":
            self.inline_table(path)
        elif ch == "[":
            self.array(path)
        elif ch in ('"', "'"):
            self.string()
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _Stop

    def inline_table(self, path: Path) -> None:
        self.expect("{")
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == "}":
                self.pos += 1
                return
            self.key_value(path)
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1

    def array(self, path: Path) -> None:
        self.expect("[")
        index = 0
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == "]":
                self.pos += 1
                return
            self.record(path + (index,), self.line())
            self.value(path + (index,))
            index += 1
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1

    def string(self) -> None:
        quote = self.peek()
        if self.peek(3) == quote * 3:
            self.pos += 3
            end = self._find_close(quote * 3, escapes=quote == '"')
            # Up to two quotes may directly precede the closing delimiter (TOML 1.0):
            # the run of quotes found is content plus delimiter, at most five long.
            run = 3
            while run < 5 and self.text[end + run : end + run + 1] == quote:
                run += 1
            self.pos = end + run
            return
        self.pos += 1
        self.pos = self._find_close(quote, escapes=quote == '"') + 1

    def _find_close(self, delimiter: str, *, escapes: bool) -> int:
        i = self.pos
        while True:
            if i >= len(self.text):
                raise _Stop
            if escapes and self.text[i] == "\\":
                i += 2
                continue
            if self.text.startswith(delimiter, i):
                return i
            i += 1
