"""Line numbers of JSON values, so that an error can say "line 42" and not only a path.

``json`` does not report positions, so this walks text that ``json.loads`` already accepted
and records, for every value, the line it starts on, keyed by its path
(``("entries", 3, "dose_limits", "soft_max")``). Pure function; no validation of its own.
Look keys up with :func:`common.diagnostics.line_for`.
"""

from __future__ import annotations

import json

from common.diagnostics import KeyPath

_WS = " \t\r\n"


def value_lines(text: str) -> dict[KeyPath, int]:
    lines: dict[KeyPath, int] = {}
    line_starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            line_starts.append(index + 1)

    def line_of(pos: int) -> int:
        lo, hi = 0, len(line_starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in _WS:
            pos += 1
        return pos

    def string_end(pos: int) -> int:  # pos at the opening quote; returns index after the closing quote
        pos += 1
        while text[pos] != '"':
            pos += 2 if text[pos] == "\\" else 1
        return pos + 1

    def value(pos: int, path: tuple) -> int:
        pos = skip(pos)
        lines[path] = line_of(pos)
        char = text[pos]
        if char == "{":
            pos = skip(pos + 1)
            if text[pos] == "}":
                return pos + 1
            while True:
                pos = skip(pos)
                end = string_end(pos)
                key = json.loads(text[pos:end])
                lines[(*path, key)] = line_of(pos)
                pos = skip(end)  # at ':'
                pos = value(pos + 1, (*path, key))
                pos = skip(pos)
                if text[pos] == "}":
                    return pos + 1
                pos += 1  # ','
        if char == "[":
            pos = skip(pos + 1)
            if text[pos] == "]":
                return pos + 1
            index = 0
            while True:
                pos = skip(value(pos, (*path, index)))
                index += 1
                if text[pos] == "]":
                    return pos + 1
                pos += 1
        if char == '"':
            return string_end(pos)
        while pos < len(text) and text[pos] not in _WS + ",]}":
            pos += 1
        return pos

    try:
        value(0, ())
    except (IndexError, ValueError):
        pass  # best effort: positions found so far are still right
    return lines
