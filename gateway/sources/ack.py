"""Acknowledgements a vendor-server source sends back (HL7 v2.6 §2.9, original and enhanced mode).

*Original mode* (MSH-15 and MSH-16 both empty): one ACK whose MSA-1 is AA (used and
committed), AE (cannot be used: ERR names segment and field) or AR (message type, processing
id or a reused control id refused).

*Enhanced mode* (either field valued, as every IHE PCD message is: MSH-15 ``AL``, MSH-16
``NE``): an accept acknowledgement (CA/CE/CR) when MSH-15 asks for it, then an application
acknowledgement (AA/AE/AR) when MSH-16 asks for it, both on the same connection. pumpgw's
processing *is* the commit, so a CA also means "committed to safe storage" (its HL7 meaning).
``AL`` always, ``NE`` never, ``ER`` only on error or reject, ``SU`` only on success.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from common.pcd.parse import Segment
from gateway.hl7.er7 import escape

_ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one inbound message: AA / AE / AR, and for AE/AR where and why."""

    code: str  # AA | AE | AR
    error_code: str = ""  # HL7 table 0357
    error_text: str = ""
    segment_id: str = ""
    sequence: int = 0
    field: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == "AA"


def acknowledgements(
    msh: Segment | None, outcome: Outcome, *, application: str, facility: str, now: datetime | None = None
) -> list[bytes]:
    """The ACK message(s) to send, in order (possibly none in enhanced mode)."""
    accept = msh.field(15) if msh is not None else ""
    app = msh.field(16) if msh is not None else ""
    if not accept and not app:
        return [_ack(msh, outcome.code, outcome, application, facility, now)]
    out = []
    if _wanted(accept, outcome):
        out.append(_ack(msh, _ENHANCED[outcome.code], outcome, application, facility, now))
    if _wanted(app, outcome):
        out.append(_ack(msh, outcome.code, outcome, application, facility, now))
    return out


def _wanted(mode: str, outcome: Outcome) -> bool:
    return mode == "AL" or (mode == "ER" and not outcome.ok) or (mode == "SU" and outcome.ok)


def _ack(
    msh: Segment | None, code: str, outcome: Outcome, application: str, facility: str, now: datetime | None
) -> bytes:
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%d%H%M%S") + "+0000"
    if msh is not None:
        sender_app, sender_fac = msh.raw_field(3), msh.raw_field(4)
        trigger = msh.component(9, 2)
        their_id, processing, version = msh.raw_field(10), msh.raw_field(11) or "P", msh.raw_field(12) or "2.6"
    else:
        sender_app = sender_fac = trigger = their_id = ""
        processing, version = "P", "2.6"
    segments = [
        (
            f"MSH|^~\\&|{escape(application)}|{escape(facility)}|{sender_app}|{sender_fac}|{stamp}||ACK^{trigger}^ACK"
            f"|{uuid.uuid4().hex[:20].upper()}|{processing}|{version}"
        ),
        f"MSA|{code}|{their_id}",
    ]
    if not outcome.ok:
        where = f"{outcome.segment_id}^{outcome.sequence}^{outcome.field or ''}" if outcome.segment_id else ""
        text = escape(outcome.error_text)
        segments.append(
            f"ERR||{where}|{outcome.error_code}^{_ERR_TEXT.get(outcome.error_code, '')}^HL70357|E||||{text}"
        )
    return ("\r".join(segments) + "\r").encode("utf-8")


# HL7 table 0357 (message error condition codes) used here.
_ERR_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "207": "Application internal error",
}
