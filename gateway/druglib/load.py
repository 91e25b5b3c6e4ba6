"""Read a library file, check its SHA-256 pin, validate it, and index it for lookups.

Order matters: the pin is checked on the raw bytes before anything is parsed, because a file
that is not the pharmacy's released artefact must be refused whatever it contains (tampered
data sets are a documented hazard, reference §7.4, CVE-2023-30562). JSON numbers are parsed as
``Decimal``. Every problem names the JSON path and the line (design.md §2 inv. 6).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pydantic import ValidationError

from common.diagnostics import line_for
from common.jsonpos import value_lines
from common.textlimits import FileTooLarge, json_too_deep, path_problem, read_bounded
from gateway.druglib.errors import LibraryInvalid, LibraryPinMismatch, LibraryProblem, LibraryUnreadable
from gateway.druglib.model import CareArea, DrugLibrary, Entry
from gateway.druglib.validate import problems_of

MAX_LIBRARY_BYTES = 16 * 1024 * 1024
"""A hospital formulary of thousands of entries is a few MiB of JSON."""
MAX_NUMBER = Decimal("1e12")
MIN_EXPONENT = -12
"""No dose, rate, weight or volume needs more; larger numbers only make the arithmetic
overflow (``decimal.Overflow`` on 1e-999999) or cost memory (1e999999 printed in full)."""


class _BadNumber(ValueError):
    def __init__(self, literal: str, reason: str) -> None:
        self.literal, self.reason = literal, reason
        super().__init__(reason)


def _number(literal: str) -> Decimal:
    value = Decimal(literal)
    # adjusted() and the exponent are read without arithmetic: abs() itself overflows on 1e1000000
    if not value.is_finite() or (
        value and (value.adjusted() >= MAX_NUMBER.adjusted() or value.as_tuple().exponent < MIN_EXPONENT)
    ):  # type: ignore[operator]
        raise _BadNumber(
            literal,
            f"number {literal[:40]!r} is outside what a drug library may contain "
            f"(at most {MAX_NUMBER:.0E}, at most {-MIN_EXPONENT} decimals)",
        )
    return value


def _integer(literal: str) -> int | Decimal:
    if len(literal.lstrip("-")) > 13:
        raise _BadNumber(literal, f"integer of {len(literal)} digits is outside what a drug library may contain")
    return int(literal)


def _position(text: str, literal: str) -> tuple[int | None, int | None]:
    """Line and column of the first occurrence of ``literal`` as a JSON number token."""
    import re

    found = re.search(r"(?<![\w.+-])" + re.escape(literal) + r"(?![\w.])", text)
    if found is None:
        return None, None
    start = found.start()
    return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


def normalise_name(name: str) -> str:
    """Drug and care-area names are matched case- and whitespace-insensitively."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class LoadedLibrary:
    """A validated library in force, with its identity (file, SHA-256) and lookup indexes."""

    library: DrugLibrary
    sha256: str
    path: Path
    _areas: dict[str, CareArea] = field(default_factory=dict, repr=False, compare=False)
    _entries: dict[tuple[str, str], tuple[Entry, ...]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, library: DrugLibrary, sha256: str, path: Path) -> LoadedLibrary:
        areas: dict[str, CareArea] = {}
        for area in library.care_areas:
            for name in (area.id, *area.aliases):
                areas[normalise_name(name)] = area
        entries: dict[tuple[str, str], list[Entry]] = {}
        for entry in library.entries:
            for area_id in entry.care_areas:
                for name in {normalise_name(entry.drug), *(normalise_name(a) for a in entry.aliases)}:
                    entries.setdefault((area_id, name), []).append(entry)
        return cls(library, sha256, path, areas, {k: tuple(v) for k, v in entries.items()})

    @property
    def version(self) -> str:
        return self.library.version

    def care_area(self, name: str | None) -> CareArea | None:
        return None if not name else self._areas.get(normalise_name(name))

    def candidates(self, care_area_id: str, drug: str) -> tuple[Entry, ...]:
        """Entries for ``drug`` (name or alias) in a care area; several when therapies split it."""
        return self._entries.get((care_area_id, normalise_name(drug)), ())

    def drug_known_elsewhere(self, drug: str) -> list[str]:
        key = normalise_name(drug)
        return sorted({area for (area, name) in self._entries if name == key})

    def is_current(self, pump_library_version: str) -> bool:
        ids = {self.library.version, *self.library.pump_library_ids}
        return pump_library_version.strip() in ids


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_library(path: Path, *, expected_sha256: str = "", require_released: bool = False) -> LoadedLibrary:
    """Load, pin-check and validate a library file; raise a :class:`LibraryError` subclass if refused."""
    path = Path(path)
    too_long = path_problem(path)
    if too_long:
        raise LibraryUnreadable(str(path)[:120] + "...", f"cannot read file: {too_long}")
    try:
        data = read_bounded(path, MAX_LIBRARY_BYTES)
    except (OSError, FileTooLarge) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise LibraryUnreadable(str(path), f"cannot read file: {reason}") from None
    return load_library_bytes(data, path=path, expected_sha256=expected_sha256, require_released=require_released)


def load_library_bytes(
    data: bytes, *, path: Path, expected_sha256: str = "", require_released: bool = False
) -> LoadedLibrary:
    if len(data) > MAX_LIBRARY_BYTES:
        raise LibraryUnreadable(str(path), f"file is larger than {MAX_LIBRARY_BYTES // 1024} KiB")
    digest = sha256_of(data)
    if expected_sha256 and digest != expected_sha256.lower():
        raise LibraryPinMismatch(str(path), expected_sha256.lower(), digest)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LibraryUnreadable(str(path), f"not UTF-8 text (byte offset {exc.start})") from None
    deep = json_too_deep(text)
    if deep is not None:  # json would recurse until RecursionError
        raise LibraryInvalid(str(path), [LibraryProblem("(file)", f"JSON {deep}", deep.line)])
    try:
        raw = json.loads(text, parse_float=_number, parse_int=_integer, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise LibraryInvalid(
            str(path), [LibraryProblem("(file)", f"JSON syntax error: {exc.msg} (column {exc.colno})", exc.lineno)]
        ) from None
    except _BadNumber as exc:
        line, column = _position(text, exc.literal)
        where = f" (column {column})" if column else ""
        raise LibraryInvalid(str(path), [LibraryProblem("(file)", exc.reason + where, line)]) from None
    except (ValueError, RecursionError) as exc:
        raise LibraryInvalid(str(path), [LibraryProblem("(file)", str(exc)[:200])]) from None
    lines = value_lines(text)
    try:
        library = DrugLibrary.model_validate(raw)
        found = [LibraryProblem(p, msg, line_for(lines, _loc(p))) for p, msg in problems_of(library)]
    except ValidationError as exc:
        problems = [_describe(err, lines) for err in exc.errors()]
        raise LibraryInvalid(str(path), problems) from None
    except (ArithmeticError, RecursionError) as exc:  # belt and braces: the number limits should prevent it
        raise LibraryInvalid(
            str(path), [LibraryProblem("(file)", f"numbers cannot be checked: {type(exc).__name__}")]
        ) from None
    if require_released and library.status != "released":
        found.append(
            LibraryProblem(
                "status",
                f"is {library.status!r}: only a released library is put in force",
                line_for(lines, ("status",)),
            )
        )
    if found:
        raise LibraryInvalid(str(path), found)
    return LoadedLibrary.build(library, digest, path)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number a drug library may contain")


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _loc(path: str) -> tuple:
    """``entries[3].dose_limits`` -> ``("entries", 3, "dose_limits")``."""
    out: list = []
    for part in path.replace("]", "").split("."):
        name, *indexes = part.split("[")
        if name:
            out.append(name)
        out.extend(int(i) for i in indexes)
    return tuple(out)


def _describe(err: dict, lines: dict[tuple, int]) -> LibraryProblem:
    # pydantic appends the failing union member or validator name to loc for some errors;
    # keep only the parts that exist in the file.
    loc = tuple(
        p for p in err["loc"] if isinstance(p, int) or not str(p).startswith(("function-", "decimal", "is-instance"))
    )
    where = _path(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown key (check the spelling; see docs/drug-library.md)"
    elif kind == "missing":
        msg = "required key is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        if not isinstance(got, (dict, list)) and got is not None:
            msg += f" (got {got!r})"
    return LibraryProblem(where, msg, line_for(lines, loc))
