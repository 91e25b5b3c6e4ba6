"""Turn pydantic's validation errors into sentences about the TOML file (config, scenarios).

pydantic reports ``('pumps', 3, 'link', 'serial', 'baudrate')`` and "Input should be 300,
1200, ...". The reader wrote ``baudrate = 9601`` under the fourth ``[[pumps]]``; they need the
key path as written (the ``serial`` union tag is pydantic's, not theirs), what was expected in
TOML terms ("an integer", "a table") and what they wrote. Unknown keys get "did you mean"
suggestions computed from the field names of the model at that level, so a new field is
suggested without anyone maintaining a list of likely typos.
"""

from __future__ import annotations

import difflib
import json
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from common.diagnostics import KeyPath

# Human wording for the regular expressions used in the models (also used by the reference doc).
PATTERN_WORDS = {
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$": "an identifier: 1-64 letters, digits, '_', '.' or '-', "
    "starting with a letter or digit (no spaces)",
    r"^([A-Z]{3})?$": 'an ISO 3166 alpha-3 country code in capitals, e.g. "DEU", or empty',
    r"^([0-9a-f]{64})?$": "a SHA-256 as 64 lower-case hex digits (the output of sha256sum), or empty",
    r"^[^#+]+$": "an MQTT topic prefix without the wildcards '#' and '+'",
}

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string in quotes",
    "list": "an array [ ... ]",
    "dict": "a table",
    "model": "a table",
    "model_attributes": "a table",
    "path": "a file path in quotes",
    "is_instance_of": "a file path in quotes",
}

_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_BOUND_CTX = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


@dataclass(frozen=True)
class Described:
    """A pydantic error restated: the key path as the user wrote it, and the sentence."""

    key: KeyPath
    message: str
    line_key: KeyPath
    """Where to look for the line: usually ``key``, sometimes a more precise sub-key."""


def describe(err: ErrorDetails, root: type[BaseModel]) -> Described:
    """``root`` is the model the location starts from (the gateway configuration, or the
    simulators' scenario file: both tell errors in these sentences)."""
    walk = _walk(err["loc"], root)
    key = walk.path
    kind = err["type"]
    got = err.get("input")
    ctx = err.get("ctx") or {}
    line_key = key
    if kind == "extra_forbidden":
        message = _unknown_key(key[-1], walk.owner)
    elif kind == "missing":
        message = _missing(key, walk.annotation)
    elif kind == "literal_error" and walk.dict_key:
        message = f"unknown key {show(key[-1])}; expected one of: {ctx.get('expected')}"
    elif kind == "literal_error":
        message = f"expected one of: {ctx.get('expected')}; got {show(got)}"
    elif kind == "union_tag_invalid":
        message = f"expected one of: {ctx.get('expected_tags')}; got {show(ctx.get('tag'))}"
        key = key + ("type",)
        line_key = key
    elif kind == "union_tag_not_found":
        key = key + ("type",)
        message = f"required key is missing; expected one of: {', '.join(repr(t) for t in walk.tags)}"
    elif kind in _BOUNDS:
        bound = ctx.get(_BOUND_CTX[kind])
        message = f"expected a value {_BOUNDS[kind]} {bound}; got {show(got)}"
    elif kind == "too_short":
        noun = "item" if ctx.get("min_length") == 1 else "items"
        message = f"expected at least {ctx.get('min_length')} {noun}; got {_got_type(got)}"
    elif kind == "finite_number":
        message = f"expected a finite number (inf and nan mean nothing here); got {show(got)}"
    elif kind == "string_too_short":
        message = f"expected a non-empty string; got {show(got)}"
    elif kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        wanted = PATTERN_WORDS.get(pattern, f"text matching the pattern {pattern}")
        message = f"expected {wanted}; got {show(got)}"
    elif kind.endswith(("_type", "_parsing")) or kind in ("is_instance_of", "int_from_float"):
        base = "int" if kind == "int_from_float" else kind.removesuffix("_type").removesuffix("_parsing")
        wanted = _TYPE_WORDS.get(base, base)
        shown = show(got) if isinstance(got, (dict, list)) else f"{show(got)} ({_got_type(got)})"
        message = f"expected {wanted}; got {shown}"
    else:
        message = err["msg"].removeprefix("Value error, ")
        sub = ctx.get("key")
        if isinstance(sub, str):  # a rule of the table names the key to look at (strict.rule_error)
            key = line_key = key + (sub,)
        if got is not None and not isinstance(got, (dict, list)):
            message += f"; got {show(got)}"
    return Described(key=key, message=message, line_key=line_key)


def show(value: Any) -> str:
    """A value as it would be written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an empty array" if not value else "an array"
    return str(value)


def _got_type(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a table",
    }.get(type(value), "an empty array" if value == [] else "an array" if isinstance(value, list) else "a value")


def _unknown_key(name: str | int, owner: type[BaseModel] | None) -> str:
    if owner is None:
        return f"unknown key {show(name)}"
    fields = list(owner.model_fields)
    close = difflib.get_close_matches(str(name), fields, n=2, cutoff=0.6)
    if not close:
        # A unit suffix or a prefix is the commonest slip (poll_interval, timeout_s).
        close = [f for f in fields if str(name) in f or f in str(name)][:2]
    if close:
        return f"unknown key {show(name)}; did you mean {' or '.join(close)}?"
    return f"unknown key {show(name)}; keys allowed here: {', '.join(fields)}"


def _missing(key: KeyPath, annotation: Any) -> str:
    target = _unwrap(annotation)
    if isinstance(target, type) and issubclass(target, BaseModel):
        header = ".".join(str(p) for p in key if isinstance(p, str))
        return f"required table [{header}] is missing"
    allowed = ""
    if get_origin(target) is Literal:
        allowed = "; expected one of: " + ", ".join(show(a) for a in get_args(target))
    return f"required key is missing{allowed}"


# -- walking the models along an error location ------------------------------------------


@dataclass(frozen=True)
class _Walk:
    path: KeyPath
    owner: type[BaseModel] | None  # the model holding the last key
    annotation: Any  # the annotation of the last key (None if unknown)
    tags: tuple[str, ...]  # union tags allowed at the last key, if it is a tagged union
    dict_key: bool  # the error is about a key of a table of free keys (ttl_s)


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for m in get_args(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    return []


def _tag_of(model: type[BaseModel]) -> tuple[str, ...]:
    for info in model.model_fields.values():
        if get_origin(info.annotation) is Literal:
            return tuple(str(a) for a in get_args(info.annotation))
    return ()


def _walk(loc: tuple[str | int, ...], root: type[BaseModel]) -> _Walk:
    path: list[str | int] = []
    current: Any = root
    owner: type[BaseModel] | None = None
    dict_key = False
    for part in loc:
        target = _unwrap(current)
        members = _union_members(target)
        if members:
            chosen = next((m for m in members if isinstance(part, str) and part in _tag_of(m)), None)
            if chosen is not None:  # pydantic's discriminator tag, not a key the user wrote
                current = chosen
                continue
            target = None
        if part == "[key]":
            dict_key = True
            continue
        path.append(part)
        if isinstance(target, type) and issubclass(target, BaseModel):
            owner = target
            info = target.model_fields.get(part) if isinstance(part, str) else None
            current = info.annotation if info is not None else None
        elif get_origin(target) in (list, dict):
            owner = None
            current = get_args(target)[-1]
        else:
            owner, current = None, None
    tags: tuple[str, ...] = ()
    for member in _union_members(_unwrap(current)):
        tags += _tag_of(member)
    return _Walk(tuple(path), owner, current, tags, dict_key)
