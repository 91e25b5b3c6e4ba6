"""The MDS identity rows of a pump (traceability, issue 17): model, serial/firmware, asset tag.

Sent in every PCD-01 (and PCD-10) MDS, after the MDS's other attributes, so that a receiver
keys every observation on the same device record (traceability-fleet.md §2.5(b): a stream
without identity "lands on a different pump record"):

    1.0.0.k     MDC_ATTR_ID_MODEL       ST  ``manufacturer=<m> model=<model>`` (TF3 example form)
    1.0.0.k+1   MDC_ATTR_ID_PROD_SPECN  ST  ``serial-number="<s>" fw-revision="<fw>"`` (TF3 form) ...
    1.0.0.k+1.1   MDC_ID_PROD_SPEC_SERIAL ST    ... and decomposed, one row per component, so a
    1.0.0.k+1.2   MDC_ID_PROD_SPEC_FW     ST    receiver needs no free-text parsing
    1.0.0.k+2   MDC_ATTR_ID_SOFT        ST  the hospital asset tag (TF3: "locally assigned ID,
                                            e.g. hospital inventory number" -- not the software)

Only what is known is sent: no serial row for a protocol without one (NE-1000).
"""

from __future__ import annotations

from drivers.model import PumpSnapshot
from gateway.hl7.context import PumpInfo
from gateway.hl7.er7 import escape

_MODEL = "67880^MDC_ATTR_ID_MODEL^MDC"
_PROD_SPECN = "67885^MDC_ATTR_ID_PROD_SPECN^MDC"
_SERIAL = "531972^MDC_ID_PROD_SPEC_SERIAL^MDC"
_FW = "531976^MDC_ID_PROD_SPEC_FW^MDC"
_SOFT = "67886^MDC_ATTR_ID_SOFT^MDC"


def _quoted(value: str) -> str:
    return '"' + value.replace('"', "'") + '"'


def identity_rows(rows, snapshot: PumpSnapshot | None, info: PumpInfo, start: int) -> int:
    """Append the identity rows after MDS attribute ``1.0.0.<start>``; returns the last k used."""
    k = start
    identity = snapshot.identity if snapshot is not None else None
    if identity is not None and (identity.manufacturer or identity.model):
        k += 1
        rows.simple("ST", _MODEL, f"1.0.0.{k}", escape(f"manufacturer={identity.manufacturer} model={identity.model}"))
    if identity is not None and (identity.serial_number or identity.firmware):
        k += 1
        parts = []
        if identity.serial_number:
            parts.append(f"serial-number={_quoted(identity.serial_number)}")
        if identity.firmware:
            parts.append(f"fw-revision={_quoted(identity.firmware)}")
        rows.simple("ST", _PROD_SPECN, f"1.0.0.{k}", escape(" ".join(parts)))
        facet = 0
        if identity.serial_number:
            facet += 1
            rows.simple("ST", _SERIAL, f"1.0.0.{k}.{facet}", escape(identity.serial_number))
        if identity.firmware:
            facet += 1
            rows.simple("ST", _FW, f"1.0.0.{k}.{facet}", escape(identity.firmware))
    if info.asset_tag:
        k += 1
        rows.simple("ST", _SOFT, f"1.0.0.{k}", escape(info.asset_tag))
    return k
