"""The audit chain: how a row's hash is computed and how a run of rows is checked. Pure.

Every row carries the hash of the row before it (``prev_hash``) and its own ``hash`` over
``prev_hash`` and all of its fields, so editing any field of any row, or deleting a row in
the middle, breaks the chain at that point. What the chain alone cannot show is a deleted
*tail* (the newest rows); :func:`verify_rows` is therefore also given the highest sequence
number the database ever handed out (SQLite's ``sqlite_sequence`` for an AUTOINCREMENT
table), and a gap between that and the last row is reported.

Retention (deleting rows older than the configured period) would break a plain chain at its
new first row. Before deleting, the trail appends a **checkpoint** row (kind
``audit.retention``) whose detail names the last deleted row (``anchor_seq``) and its hash
(``anchor_hash``). The checkpoint is itself chained and hashed, so it cannot be forged without
breaking the chain after it; the new first row must then have ``seq == anchor_seq + 1`` and
``prev_hash == anchor_hash``. Without a checkpoint the first row must be row 1 with the
genesis hash. Design after certificate-transparency style hash chains, kept minimal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
RETENTION_KIND = "audit.retention"


def canonical(detail: Mapping[str, Any]) -> str:
    """The one JSON text of ``detail`` that is hashed and stored (sorted keys, no spaces)."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(prev_hash: str, seq: int, at: str, kind: str, subject: str, actor: str, detail: str) -> str:
    # Unit separator between fields: no field value can shift content into its neighbour.
    text = "\x1f".join((prev_hash, str(seq), at, kind, subject, actor, detail))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: str
    kind: str
    subject: str
    actor: str
    detail: str  # canonical JSON
    prev_hash: str
    hash: str

    @property
    def detail_dict(self) -> dict[str, Any]:
        try:
            value = json.loads(self.detail)
        except ValueError:
            return {"unparsable": self.detail}
        return value if isinstance(value, dict) else {"value": value}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "subject": self.subject,
            "actor": self.actor,
            "detail": self.detail_dict,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One break in the chain: where, and what is wrong."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.problem}"


def verify_rows(rows: Iterable[AuditRow], *, highest_seq: int) -> list[Finding]:
    """Every break in ``rows`` (ordered by seq). Empty list: the chain is intact."""
    findings: list[Finding] = []
    rows = list(rows)
    anchors: dict[int, str] = {}
    for row in rows:
        if row.kind == RETENTION_KIND:
            d = row.detail_dict
            if isinstance(d.get("anchor_seq"), int) and isinstance(d.get("anchor_hash"), str):
                anchors[d["anchor_seq"]] = d["anchor_hash"]
    previous: AuditRow | None = None
    for row in rows:
        expected = row_hash(row.prev_hash, row.seq, row.at, row.kind, row.subject, row.actor, row.detail)
        if expected != row.hash:
            findings.append(Finding(row.seq, "content does not match its hash (row edited)"))
        if previous is None:
            if row.seq == 1:
                if row.prev_hash != GENESIS:
                    findings.append(Finding(row.seq, "first row does not start from the genesis hash"))
            elif anchors.get(row.seq - 1) != row.prev_hash:
                findings.append(
                    Finding(
                        row.seq,
                        f"rows 1..{row.seq - 1} are missing and no retention "
                        "checkpoint accounts for them (rows deleted)",
                    )
                )
        else:
            if row.seq != previous.seq + 1:
                findings.append(Finding(row.seq, f"rows {previous.seq + 1}..{row.seq - 1} are missing (rows deleted)"))
            if row.prev_hash != previous.hash:
                findings.append(Finding(row.seq, "does not chain to the row before it (a row was edited or deleted)"))
        previous = row
    last = previous.seq if previous is not None else 0
    if highest_seq > last:
        findings.append(
            Finding(last + 1, f"rows {last + 1}..{highest_seq} were issued but are missing (newest rows deleted)")
        )
    return findings
