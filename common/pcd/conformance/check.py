"""Conformance checker for IHE PCD messages: ``check_message(raw) -> list[Finding]``.

Used by ``pumpgw hl7 check`` and by the EHR simulator on every message it receives. It reads
through the tolerant parser (parse.py) and reports what a strict reading of the TF calls a
defect — including the deviations the parser tolerates (stray blanks, the alternative ACM
OID, priority/type in OBX-8), so a tester sees them. Rules and their TF sources are listed
in docs/hl7.md; OBX and alert rules live in check_obx.py.

Messages carrying an MSA (ACK, RRG^O16) are acknowledgements: only their syntax, MSH-1..18
and structure are checked (MSH-21 is required in non-ACK messages only, TF2-R10 B.1).
"""

from __future__ import annotations

from functools import lru_cache

from common.pcd import mdc
from common.pcd.conformance.check_obx import check_observations
from common.pcd.conformance.findings import DTM_RE, Finding, Findings
from common.pcd.parse import (
    Message,
    Segment,
    Transaction,
    has_edge_blank,
    parse_message,
    profile_oids,
    transaction_of,
)

__all__ = ["Finding", "check_message"]

_BLANKS = " \t\u00a0"
# (segment, field) holding times that must carry a UTC offset (TF2-R10 B.8.7-B.8.9, C.4).
TIMESTAMP_FIELDS = (("MSH", 7), ("OBR", 7), ("OBR", 8), ("OBX", 14))


# Allowed successor segments per message structure ("^" start, "$" end). NTE and PRT are
# attachments (allowed after PID/OBR/OBX) and skipped in the order check.
_ORU_R01 = {
    "^": {"MSH"},
    "MSH": {"SFT", "UAC", "PID"},
    "SFT": {"SFT", "UAC", "PID"},
    "UAC": {"PID"},
    "PID": {"NK1", "PV1"},
    "NK1": {"NK1", "PV1"},
    "PV1": {"OBR"},
    "OBR": {"TQ1", "OBX"},
    "TQ1": {"OBX"},
    "OBX": {"OBX", "OBR", "$"},
}
STRUCTURES: dict[str, dict[str, set[str]]] = {
    "ORU_R01": _ORU_R01,  # TF2-R10 §3.1.4.1.1 (PCD-01) and §3.10 (PCD-10)
    "ORU_R40": {
        "^": {"MSH"},
        "MSH": {"SFT", "PID", "ORC", "OBR"},
        "SFT": {"SFT", "PID", "ORC", "OBR"},
        "PID": {"PV1", "ORC", "OBR"},
        "PV1": {"ORC", "OBR"},
        "ORC": {"OBR"},
        "OBR": {"OBR", "OBX"},
        "OBX": {"OBX", "ORC", "OBR", "$"},
    },  # §3.4.4.1.2
    "ORA_R41": {
        "^": {"MSH"},
        "MSH": {"MSA"},
        "MSA": {"PID", "ORC", "OBR"},
        "PID": {"PV1", "ORC", "OBR"},
        "PV1": {"ORC", "OBR"},
        "ORC": {"OBR"},
        "OBR": {"OBX", "$"},
        "OBX": {"OBX", "$"},
    },  # §3.5
    "RGV_O15": {
        "^": {"MSH"},
        "MSH": {"PID"},
        "PID": {"PV1", "ORC"},
        "PV1": {"ORC"},
        "ORC": {"RXG"},
        "RXG": {"TQ1", "RXR"},
        "TQ1": {"RXR"},
        "RXR": {"OBX"},
        "OBX": {"OBX", "RXG", "$"},
    },  # Table 3.3.4.2-1
    "RRG_O16": {
        "^": {"MSH"},
        "MSH": {"MSA"},
        "MSA": {"ERR", "PID", "ORC", "$"},
        "ERR": {"ERR", "PID", "ORC", "$"},
        "PID": {"ORC", "$"},
        "ORC": {"$"},
    },  # §3.3.5
    "ACK": {"^": {"MSH"}, "MSH": {"MSA"}, "MSA": {"ERR", "$"}, "ERR": {"ERR", "$"}},
}
_ATTACHED = {"NTE", "PRT"}


def check_message(raw: bytes | str | Message) -> list[Finding]:
    """Every violation of the implemented TF rules, in message order (empty list = conformant).

    Takes the raw bytes/text, or a message already parsed by :func:`parse_message` (a receiver
    that parses once, gateway/sources)."""
    message = raw if isinstance(raw, Message) else parse_message(raw)
    out = Findings()
    msh = message.msh
    if msh is None:
        out.add("MSG-NO-MSH", message.segments[0] if message.segments else None, None, "a message starts with MSH")
        return out
    for position in message.empty_lines:
        out.add("SEG-EMPTY", None, None, f"empty segment after segment {position - 1}")
    for seg in message.segments:
        _check_blanks(seg, out)
    transaction = _check_msh(message, msh, out)
    if transaction is None:
        return sorted(out, key=_order)
    _check_structure(message, transaction, out)
    _check_timestamps(message, out)
    if not transaction.is_ack:
        _check_mdc(message, out)
        check_observations(message, transaction, out)
    return sorted(out, key=_order)


def _order(f: Finding) -> tuple[int, int]:
    return (f.segment, f.field or 0)


def _check_blanks(seg: Segment, out: Findings) -> None:
    """Leading/trailing blanks inside a value (tolerated on receive, §2.2; still a defect)."""
    if seg.plain or not has_edge_blank(seg.raw):
        return  # the common case, decided by one scan of the segment (at parse time if plain)
    start = 3 if seg.name == "MSH" else 1
    for n in range(start, len(seg.fields)):
        raw = seg.fields[n]
        if not raw:
            continue
        parts = (sub for rep in raw.split("~") for comp in rep.split("^") for sub in comp.split("&"))
        if any(p and (p[0] in _BLANKS or p[-1] in _BLANKS) for p in parts):
            out.add("STRAY-BLANK", seg, n, f"blank at the start or end of a value: {raw.strip()[:60]!r}")


def _check_msh(message: Message, msh: Segment, out: Findings) -> Transaction | None:
    """MSH rules of TF2-R10 B.1 (ihe-pcd.md §2)."""
    if msh.raw_field(2) != "^~\\&":
        out.add("MSH-2", msh, 2, f"encoding characters must be '^~\\&', got {msh.raw_field(2)!r}")
    transaction = transaction_of(message)
    msh9 = msh.components(9)
    if transaction is None:
        out.add("MSH-9", msh, 9, f"message type {'^'.join(msh9)!r} is not a PCD transaction this checker knows")
        return None
    structure = msh9[2] if len(msh9) > 2 else ""
    if transaction.name != "ACK" and structure != transaction.structure:
        out.add(
            "MSH-9",
            msh,
            9,
            f"{transaction.name} needs message structure {transaction.structure}, got {structure or 'none'!r}",
        )
    if not msh.field(10):
        out.add("MSH-10", msh, 10, "message control id is required")
    if msh.field(12) != "2.6":
        out.add("MSH-12", msh, 12, f"the DEV TF is based on HL7 v2.6, got {msh.field(12)!r}")
    if msh.field(15) not in transaction.msh15:
        out.add(
            "MSH-15", msh, 15, f"{transaction.name} needs {'/'.join(sorted(transaction.msh15))}, got {msh.field(15)!r}"
        )
    if msh.field(16) not in transaction.msh16:
        out.add(
            "MSH-16", msh, 16, f"{transaction.name} needs {'/'.join(sorted(transaction.msh16))}, got {msh.field(16)!r}"
        )
    if not message.text.isascii() and not msh.field(18):
        out.add("MSH-18", msh, 18, "non-ASCII characters need a character set (e.g. UNICODE UTF-8)")
    if transaction.is_ack and not transaction.oids:
        return transaction  # a plain ACK: no profile (MSH-21 is for non-ACK messages, B.1)
    language = msh.components(19)
    if language and any(language) and (len(language) < 3 or language[2] != "ISO639"):
        out.add("MSH-19", msh, 19, f"language coding system must be ISO639, got {'^'.join(language)!r}")
    oids = profile_oids(msh)
    if not oids:
        out.add("MSH-21", msh, 21, f"no profile OID (EI-3); {transaction.name} is {transaction.oids[0]}")
    elif transaction.oids[0] not in oids:
        if any(o in transaction.oids for o in oids):
            out.add(
                "MSH-21-ALT",
                msh,
                21,
                f"alternative OID {oids[0]} (tolerated); TF2-R10 B.1 gives "
                f"{transaction.oids[0]} for {transaction.name}",
            )
        else:
            out.add("MSH-21", msh, 21, f"OID {oids[0]} does not match {transaction.name} ({transaction.oids[0]})")
    return transaction


def _check_structure(message: Message, transaction: Transaction, out: Findings) -> None:
    table = STRUCTURES.get(transaction.structure)
    if table is None:
        return
    previous = "^"
    for seg in message.segments:
        if seg.name in _ATTACHED and previous in ("PID", "OBR", "OBX", "ORC"):
            continue
        if seg.name not in table.get(previous, ()):
            allowed = ", ".join(sorted(table.get(previous, ())))
            out.add(
                "STRUCTURE",
                seg,
                None,
                f"{seg.name} cannot follow {previous} in {transaction.structure} (allowed: {allowed or 'nothing'})",
            )
        previous = seg.name
    if "$" not in table.get(previous, ()):
        last = message.segments[-1]
        out.add("STRUCTURE", last, None, f"{transaction.structure} cannot end with {previous}")


def _check_timestamps(message: Message, out: Findings) -> None:
    for seg in message.segments:
        for name, n in TIMESTAMP_FIELDS:
            if seg.name != name:
                continue
            value = seg.field(n)
            if not value:
                continue
            match = DTM_RE.match(value)
            if match is None:
                out.add("TS-FORMAT", seg, n, f"{value!r} is not an HL7 DTM (YYYYMMDDHHMMSS[.SSSS]+ZZZZ)")
            elif match.group(1) is None:
                out.add("TS-OFFSET", seg, n, f"{value!r} has no UTC offset (TF2-R10 C.4 requires one)")


def _check_mdc(message: Message, out: Findings) -> None:
    """MDC code/REFID pairs against the table of ihe-pcd.md §11, in every CWE of the message."""
    for seg in message.segments:
        if seg.name == "MSH":
            continue
        for n in range(1, len(seg.fields)):
            if "MDC" not in seg.fields[n]:
                continue  # no MDC triplet in this field
            for comps in seg.repetitions(n):
                for rule, text in _mdc_problems(tuple(comps)):
                    out.add(rule, seg, n, text)


@lru_cache(maxsize=2048)  # the same codes and units recur in every message of a sender
def _mdc_problems(comps: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    triples = [comps[i : i + 3] for i in (0, 3) if len(comps) >= i + 3]
    found = []
    mdc_code = None
    for code, refid, system in triples:
        if system != "MDC" or not code:
            continue
        if not code.isdigit():  # mnemonic MDC codes such as OBX-17 AMEAS^auto-measurement^MDC
            continue
        value = int(code)
        mdc_code = value
        if 0 < value < mdc.PARTITION_SIZE:
            found.append(
                (
                    "MDC-PARTITION",
                    f"{value} {refid}: a bare term code; context-free codes are "
                    "partition * 65536 + term code (TF2-R10 A.1)",
                )
            )
        elif value and refid in mdc.KNOWN_CODES and mdc.KNOWN_CODES[refid] != value:
            found.append(("MDC-CODE", f"{refid} is {mdc.KNOWN_CODES[refid]}, got {value}"))
        elif value and refid and mdc.REFID_BY_CODE.get(value, refid) != refid:
            found.append(("MDC-CODE", f"{value} is {mdc.REFID_BY_CODE[value]}, not {refid}"))
    if mdc_code is not None:
        for code, _text, system in triples:
            if system == "UCUM" and code.isdigit() and int(code) == mdc_code % mdc.PARTITION_SIZE:
                found.append(
                    (
                        "MDC-UCUM-CODE",
                        f"UCUM identifier {code!r} is the partition-less MDC term code of {mdc_code}, not a UCUM unit",
                    )
                )
    return tuple(found)


def conformance_findings(raw: bytes) -> list[str]:
    """The checker as the EHR simulator's hook wants it: one readable line per violation."""
    return [str(finding) for finding in check_message(raw)]
