"""Canonical bytes of a drug library: what a release signature covers.

A signature must not break when a file is re-indented, and canonicalisation must never change
a limit. So the canonical form is defined on the JSON *text*, not on Python values:

* the file is parsed as UTF-8 JSON (RFC 8259); a duplicate key in one object is refused (two
  parsers could keep different values -- the same ambiguity RFC 8785 §3.1 rules out);
* every number is kept as the exact characters it was written with (``1.50`` stays ``1.50``,
  ``2E3`` stays ``2E3``); :mod:`gateway.druglib.load` parses those same characters as
  ``Decimal``, so the library checked is the library signed, digit for digit;
* objects are written with their keys sorted by code point, without insignificant
  whitespace (separators ``,`` and ``:``), strings with JSON's minimal escaping and non-ASCII
  characters as themselves, encoded as UTF-8 without a byte-order mark.

Pure functions over bytes; no I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from common.textlimits import json_too_deep
from gateway.druglib.errors import LibraryUnreadable


class _Number(str):
    """A JSON number kept as the exact text it was written with."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a drug library may contain")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in one object")
        out[key] = value
    return out


def _parse(data: bytes, where: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LibraryUnreadable(where, f"not UTF-8 text (byte offset {exc.start})") from None
    if text.startswith("\ufeff"):
        raise LibraryUnreadable(where, "starts with a byte-order mark (save as UTF-8 without BOM)")
    deep = json_too_deep(text)
    if deep is not None:  # json would recurse until RecursionError (issue 14: limits before parsing)
        raise LibraryUnreadable(where, f"JSON nested too deeply ({deep})")
    try:
        return json.loads(
            text, parse_float=_Number, parse_int=_Number, parse_constant=_no_constant, object_pairs_hook=_pairs
        )
    except RecursionError:
        raise LibraryUnreadable(where, "JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise LibraryUnreadable(
            where, f"JSON syntax error: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise LibraryUnreadable(where, str(exc)) from None


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, _Number):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for n, key in enumerate(sorted(value)):
            if n:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    else:  # pragma: no cover - json.loads produces nothing else
        raise TypeError(f"unexpected JSON value {type(value).__name__}")


def canonical_bytes(data: bytes, *, where: str = "(library)") -> bytes:
    """The canonical form of a JSON document; raises :class:`LibraryUnreadable` naming ``where``."""
    out: list[str] = []
    try:
        _write(_parse(data, where), out)
    except RecursionError:
        raise LibraryUnreadable(where, "JSON nested too deeply") from None
    return "".join(out).encode("utf-8")


def canonical_sha256(data: bytes, *, where: str = "(library)") -> tuple[bytes, str]:
    """Canonical bytes and their SHA-256 (hex): the identity of a signed release."""
    canon = canonical_bytes(data, where=where)
    return canon, hashlib.sha256(canon).hexdigest()
