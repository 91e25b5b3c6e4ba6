"""How the simulated EHR answers: the ``--mode`` syntax and the ``--schedule`` file.

MODE is a comma-separated list of terms::

    aa | ca                 base answer to every message (default aa)
    ACTION                  apply ACTION to every message
    ACTION:N                apply ACTION to the N-th message received (1-based, all connections)
    ACTION:/REGEX/          apply ACTION to messages whose text matches REGEX
    slow:S                  wait S seconds before each answer
    down:T                  refuse connections for T seconds (from start or from the switch)

ACTION is one of ae ce ar cr (answer with that code), noack (never answer, keep the
connection open), wrong-msa2 (answer AA with another MSA-2), close-mid-ack (send half the
ACK frame, then close). The first matching ACTION wins; otherwise the base answer.
Examples: ``ca``, ``ae:3``, ``ce:/ORU\\^R40/``, ``ar:1,ar:2``, ``slow:0.5,noack:/PUMP-7/``.

A schedule file holds one ``SECONDS MODE`` per line (``#`` comments); at SECONDS after
start the receiver switches to MODE, e.g. ``0 aa`` / ``10 down:5`` / ``20 ar`` / ``30 aa``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import BadInput

ACTIONS = ("ae", "ce", "ar", "cr", "noack", "wrong-msa2", "close-mid-ack")


class ModeError(BadInput):
    def __init__(self, spec: str, reason: str, where: str = "") -> None:
        self.spec = spec
        self.reason = reason
        super().__init__(f"{where}invalid EHR simulator mode {spec!r}: {reason}")


@dataclass(frozen=True)
class Rule:
    action: str
    index: int | None = None  # the N-th message
    pattern: re.Pattern[str] | None = None

    def matches(self, n: int, text: str) -> bool:
        if self.index is not None:
            return n == self.index
        if self.pattern is not None:
            return self.pattern.search(text) is not None
        return True


@dataclass(frozen=True)
class Mode:
    base: str = "AA"
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    slow_s: float = 0.0
    down_s: float = 0.0
    spec: str = "aa"

    def action_for(self, n: int, text: str) -> str:
        for rule in self.rules:
            if rule.matches(n, text):
                return rule.action
        return self.base.lower()


def parse_mode(spec: str) -> Mode:
    base, rules, slow, down = "AA", [], 0.0, 0.0
    for term in _split_terms(spec):
        name, _, arg = term.partition(":")
        name = name.strip().lower()
        if name in ("aa", "ca") and not arg:
            base = name.upper()
        elif name in ("slow", "down"):
            try:
                value = float(arg)
            except ValueError:
                raise ModeError(spec, f"{name} needs seconds, e.g. {name}:2.5 (got {arg!r})") from None
            if value < 0:
                raise ModeError(spec, f"{name} seconds must be >= 0")
            slow, down = (value, down) if name == "slow" else (slow, value)
        elif name in ACTIONS:
            rules.append(_rule(spec, name, arg))
        else:
            raise ModeError(
                spec, f"unknown term {term!r}; expected aa, ca, slow:S, down:T or one of {', '.join(ACTIONS)}"
            )
    return Mode(base=base, rules=tuple(rules), slow_s=slow, down_s=down, spec=spec)


def _split_terms(spec: str) -> list[str]:
    """Split on commas outside /regex/ literals."""
    terms, cur, in_re = [], "", False
    for i, ch in enumerate(spec):
        if ch == "/" and (i == 0 or spec[i - 1] != "\\"):
            in_re = not in_re
        if ch == "," and not in_re:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    out = [t.strip() for t in terms if t.strip()]
    if not out:
        raise ModeError(spec, "empty mode")
    return out


def _rule(spec: str, action: str, arg: str) -> Rule:
    if not arg:
        return Rule(action)
    if len(arg) >= 2 and arg[0] == "/" and arg[-1] == "/":
        try:
            return Rule(action, pattern=re.compile(arg[1:-1]))
        except re.error as exc:
            raise ModeError(spec, f"bad regular expression {arg!r}: {exc}") from None
    if arg.isdigit() and int(arg) >= 1:
        return Rule(action, index=int(arg))
    raise ModeError(spec, f"{action}: expects N (message number >= 1) or /REGEX/, got {arg!r}")


def parse_schedule(path: Path) -> list[tuple[float, Mode]]:
    entries: list[tuple[float, Mode]] = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        at, _, spec = line.partition(" ")
        try:
            seconds = float(at)
        except ValueError:
            raise ModeError(
                line, f"expected 'SECONDS MODE', got {at!r} as seconds", where=f"{path}:{lineno}: "
            ) from None
        try:
            entries.append((seconds, parse_mode(spec.strip())))
        except ModeError as exc:
            raise ModeError(exc.spec, exc.reason, where=f"{path}:{lineno}: ") from None
    return sorted(entries, key=lambda e: e[0])
