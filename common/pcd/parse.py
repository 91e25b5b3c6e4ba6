"""Tolerant receive-side parser for PCD messages (used by the checker and the EHR simulator).

Tolerant by design (ihe-pcd.md §12.6): CR, LF or CRLF segment separators, optional MLLP
frame bytes, stray blanks around values (values are read trimmed; the checker reports the
blanks), both ACM profile OIDs, ``0^REFID^MDC`` pending codes, and alert priority/type
from facet rows or from the deprecated OBX-8 style. ACK/MSA handling for delivery is the
outbox's (gateway/mllp/ack.py); this module only reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from common.pcd import mdc
from common.pcd.er7 import unescape

OID_PCD01 = "1.3.6.1.4.1.19376.1.6.1.1.1"
OID_PCD04 = "1.3.6.1.4.1.19376.1.6.1.4.1"
OID_PCD04_ALT = "1.3.6.1.4.1.19376.1.6.4.4.1"  # B.1's own example and E.3 (§2.2)
OID_PCD10 = "1.3.6.1.4.1.19376.1.6.4.10"
OID_PCD03 = "1.3.6.1.4.1.19376.1.6.1.3.1"
OID_PCD03_ANSWER = "1.3.6.1.4.1.19376.1.6.1.3.2"
OID_PCD05 = "1.3.6.1.4.1.19376.1.6.1.5.1"
_BLANKS = " \t\u00a0"
# A blank beside a separator or at the end of a segment: a value the reader must trim.
EDGE_BLANK = re.compile(r"[|^~&][ \t\u00a0]|[ \t\u00a0](?:[|^~&]|$)")


@dataclass(frozen=True, slots=True)
class Transaction:
    name: str  # "PCD-01", "PCD-04", ...
    structure: str  # expected MSH-9.3
    oids: tuple[str, ...]  # accepted MSH-21 EI-3; first = the B.1 value
    msh15: frozenset[str]
    msh16: frozenset[str]
    is_ack: bool = False


_ANY = frozenset({"AL", "NE", "ER", "SU"})
TRANSACTIONS: dict[tuple[str, str], Transaction] = {
    ("ORU", "R01"): Transaction("PCD-01", "ORU_R01", (OID_PCD01,), frozenset({"AL"}), frozenset({"NE"})),
    ("ORU", "R40"): Transaction("PCD-04", "ORU_R40", (OID_PCD04, OID_PCD04_ALT), frozenset({"AL"}), _ANY),
    ("ORU", "R42"): Transaction("PCD-10", "ORU_R01", (OID_PCD10,), frozenset({"AL"}), frozenset({"NE"})),
    ("ORA", "R41"): Transaction("PCD-05", "ORA_R41", (OID_PCD05,), frozenset({"AL"}), frozenset({"NE"})),
    ("RGV", "O15"): Transaction("PCD-03", "RGV_O15", (OID_PCD03,), frozenset({"AL"}), frozenset({"AL"})),
    ("RRG", "O16"): Transaction(
        "PCD-03 answer", "RRG_O16", (OID_PCD03_ANSWER,), frozenset({"AL"}), frozenset({"NE"}), is_ack=True
    ),
}
ACK_TRANSACTION = Transaction("ACK", "ACK", (), frozenset({"NE"}), frozenset({"NE"}), is_ack=True)


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment; ``number`` is 1-based in the message. Field n is SEG-n (MSH-n too).

    ``plain`` (decided once, at parse) says the segment holds no escape sequence and no blank
    next to a separator: then a value is its raw text, and a field is read by one ``split``
    with no trimming or unescaping (the common case; inbound throughput, bench/source_bench.py).
    """

    number: int
    name: str
    raw: str
    fields: tuple[str, ...]  # fields[n] == SEG-n (raw, escaped, untrimmed)
    plain: bool = field(default=False, compare=False, repr=False)
    # results of the slow path, computed once: the checker and a source's mapping read the
    # same fields several times
    _cache: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def raw_field(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def field(self, n: int) -> str:
        """SEG-n, first repetition, trimmed and unescaped."""
        if self.plain:
            raw = self.fields[n] if n < len(self.fields) else ""
            return raw.split("~", 1)[0] if "~" in raw else raw
        value = self._cache.get(n)
        if value is None:
            value = self._cache[n] = unescape(self.raw_field(n).split("~")[0].strip(_BLANKS))
        return value

    def components(self, n: int, repetition: int = 0) -> list[str]:
        if self.plain:
            raw = self.fields[n] if n < len(self.fields) else ""
            if "~" not in raw:
                return raw.split("^") if repetition == 0 else []
            reps = raw.split("~")
            return reps[repetition].split("^") if repetition < len(reps) else []
        key = (n, repetition)
        cached = self._cache.get(key)
        if cached is None:
            reps = self.raw_field(n).split("~")
            cached = (
                ()
                if repetition >= len(reps)
                else tuple(unescape(c.strip(_BLANKS)) for c in reps[repetition].split("^"))
            )
            self._cache[key] = cached
        return list(cached)

    def repetitions(self, n: int) -> list[list[str]]:
        raw = self.raw_field(n)
        if not raw:
            return []
        if self.plain:
            return [rep.split("^") for rep in raw.split("~")]
        return [[unescape(c.strip(_BLANKS)) for c in rep.split("^")] for rep in raw.split("~")]

    def component(self, n: int, c: int, repetition: int = 0) -> str:
        comps = self.components(n, repetition)
        return comps[c - 1] if c <= len(comps) else ""


@dataclass(frozen=True, slots=True)
class Message:
    segments: tuple[Segment, ...]
    empty_lines: tuple[int, ...]  # positions of empty segments (between separators)
    text: str

    @property
    def msh(self) -> Segment | None:
        return self.segments[0] if self.segments and self.segments[0].name == "MSH" else None

    def named(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]


def parse_message(raw: bytes | str) -> Message:
    """Split into segments and fields without judging anything (the checker judges)."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # 8859/1 senders (MSH-18); latin-1 maps every byte
            text = raw.decode("latin-1")
    else:
        text = raw
    text = text.lstrip("\x0b")  # MLLP start block
    for trailer in ("\x1c\r", "\x1c"):  # MLLP end block
        if text.endswith(trailer):
            text = text[: -len(trailer)]
            break
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    if lines and lines[-1] == "":
        lines.pop()  # the terminator of the last segment
    segments: list[Segment] = []
    empty: list[int] = []
    for line in lines:
        if not line.strip(_BLANKS):
            empty.append(len(segments) + 1)
            continue
        number = len(segments) + 1
        name = line[:3]
        if name == "MSH":
            parts = line.split("|")
            # MSH-1 is the separator itself, so MSH-n sits at parts[n - 1].
            fields = ("MSH", "|", *parts[1:])
        else:
            fields = tuple(line.split("|"))
        plain = "\\" not in line and not has_edge_blank(line)
        segments.append(Segment(number, name.strip(), line, fields, plain))
    return Message(tuple(segments), tuple(empty), text)


_SPACE_PAIRS = tuple(p for sep in "|^~&" for p in (sep + " ", " " + sep))


def has_edge_blank(line: str) -> bool:
    """Whether a value in ``line`` starts or ends with a blank (the checker's STRAY-BLANK).

    Substring tests instead of EDGE_BLANK's scan: a dozen ``in`` tests cost a tenth of the
    regex on a segment that has spaces only inside values (drug names, "IHE PCD")."""
    if "\t" in line or "\u00a0" in line:
        return EDGE_BLANK.search(line) is not None
    return " " in line and (line.endswith(" ") or any(p in line for p in _SPACE_PAIRS))


def transaction_of(message: Message) -> Transaction | None:
    msh = message.msh
    if msh is None:
        return None
    comps = msh.components(9)
    kind = comps[0] if comps else ""
    trigger = comps[1] if len(comps) > 1 else ""
    if kind == "ACK":
        return ACK_TRANSACTION
    return TRANSACTIONS.get((kind, trigger))


def profile_oids(msh: Segment) -> list[str]:
    """Every MSH-21 EI-3, trimmed (the PCD-10 sample writes ``IHE PCD^ 1.3.6...``)."""
    return [rep[2] for rep in msh.repetitions(21) if len(rep) > 2 and rep[2]]


@lru_cache(maxsize=1024)  # the same few dozen sub-ids in every message of a sender
def obx4_key(value: str) -> tuple[int, ...] | None:
    """OBX-4 dotted sub-id as a tuple of ints (dictionary order, B.8.4); None if malformed."""
    parts = value.split(".")
    if not 4 <= len(parts) <= 6 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert read from a PCD-04, whichever style the sender used."""

    prefix: tuple[int, ...]
    event_code: list[str]  # OBX-3 of facet 1
    event_value: list[str]  # OBX-5 of facet 1
    facets: dict[int, Segment]
    phase: str
    state: str
    priority: str
    alert_type: str
    priority_from_obx8: bool


def read_alerts(message: Message) -> list[AlertView]:
    """Group facet rows (5-level OBX-4) by their 4-level prefix; only prefixes with facet 1."""
    groups: dict[tuple[int, ...], dict[int, Segment]] = {}
    for seg in message.named("OBX"):
        key = obx4_key(seg.field(4))
        if key is not None and len(key) == 5:
            groups.setdefault(key[:4], {})[key[4]] = seg
    alerts = []
    for prefix, facets in groups.items():
        event = facets.get(1)
        if event is None:
            continue
        flags = [rep[0] for rep in event.repetitions(8)]
        priority = facets[6].field(5) if 6 in facets else next((f for f in flags if f in mdc.PRIORITIES), "")
        alert_type = facets[7].field(5) if 7 in facets else next((f for f in flags if f in mdc.ALERT_TYPES), "")
        alerts.append(
            AlertView(
                prefix=prefix,
                event_code=event.components(3),
                event_value=event.components(5),
                facets=facets,
                phase=facets[3].field(5) if 3 in facets else "",
                state=facets[4].field(5) if 4 in facets else "",
                priority=priority,
                alert_type=alert_type,
                priority_from_obx8=(6 not in facets or 7 not in facets) and bool(flags),
            )
        )
    return alerts
