"""Device-management report to a CMMS: ``ORU^R01`` in the IHE MEM-DMC (PCD-15) style.

**Status of the profile.** MEM-DMC is a *Trial Implementation* supplement (Rev 1.3,
2017-11-09) that never reached the DEV Technical Framework's Final Text; this message follows
its published shape as far as it is known (docs/biomedical-engineer.md, "CMMS report"):

* MSH-21 ``IHE_PCD_015^IHE PCD^1.3.6.1.4.1.19376.1.6.1.15.1^ISO`` (the TF's OID pattern; a
  public sample uses another arc -- receivers are advised to accept both);
* OBR-4 ``69135^MDC_OBS_MEM^MDC`` (CP-PCD-152, a *provisionally approved* code);
* **device rows only, no patient**: PID carries only PID-31 "identity unknown" = ``Y`` and
  PV1 only PV1-2 ``N`` because the v2.6 ORU_R01 structure still requires both segments
  (making them optional is an open IHE action item);
* MDS rows: ``MDC_ATTR_ID_MODEL`` 67880, ``MDC_ATTR_ID_SOFT`` 67886 (asset tag),
  ``MDC_ID_PROD_SPEC_SERIAL`` 531972, ``MDC_ID_PROD_SPEC_FW`` 531976, the pump's library
  version 184517; the change itself and the previous serial as local codes ``99PUMPGW``
  (no MDC term exists); the location as ``0^MDCX_LS_ATTR_LOCATION^MDC`` -- an ``MDCX``
  placeholder *pending* assignment, as MEM-LS samples do.

Pure: identity record + changes in, bytes out (MSH-10 fixed here).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.hl7.context import EncodeContext
from gateway.hl7.encode import _filler, _header, _msh
from gateway.hl7.er7 import SEGMENT_SEP, dtm, escape
from gateway.identity.compare import Change
from gateway.identity.model import SlotRecord

PROFILE_PCD15 = "IHE_PCD_015^IHE PCD^1.3.6.1.4.1.19376.1.6.1.15.1^ISO"
OBR4_MEM = "69135^MDC_OBS_MEM^MDC"
LOCAL = "99PUMPGW"


def encode_dmc(
    record: SlotRecord,
    changes: Sequence[Change],
    ctx: EncodeContext,
    *,
    ward: str,
    bed: str,
) -> tuple[str, bytes]:
    control_id = ctx.control_ids.next_id()
    h = _header(ctx)
    now = dtm(ctx.clock(), what="OBR-7")
    entity = escape(record.serial_number or record.pump_id)
    segments = [
        "PID" + "|" * 31 + "Y",  # PID-31 identity unknown indicator: no patient in a device report
        "PV1||N",
        f"OBR|1||{_filler(h, control_id)}|{OBR4_MEM}|||{now}",
        f"OBX|1||69985^MDC_DEV_PUMP_INFUS_MDS^MDC|1.0.0.0|||||||X|||||||{entity}^^{ctx.eui64.upper()}^EUI-64",
    ]
    n = 1
    k = 0

    def row(vt: str, code: str, value: str) -> None:
        nonlocal n, k
        n += 1
        k += 1
        segments.append(f"OBX|{n}|{vt}|{code}|1.0.0.{k}|{value}||||||F")

    if record.manufacturer or record.model:
        row(
            "ST",
            "67880^MDC_ATTR_ID_MODEL^MDC",
            escape(f"manufacturer={record.manufacturer or ''} model={record.model or ''}"),
        )
    if record.asset_tag:
        row("ST", "67886^MDC_ATTR_ID_SOFT^MDC", escape(record.asset_tag))
    if record.serial_number:
        row("ST", "531972^MDC_ID_PROD_SPEC_SERIAL^MDC", escape(record.serial_number))
    if record.firmware:
        row("ST", "531976^MDC_ID_PROD_SPEC_FW^MDC", escape(record.firmware))
    if record.drug_library_version:
        row("ST", "184517^MDC_PUMP_DRUG_LIBRARY_VERSION^MDC", escape(record.drug_library_version))
    for change in changes:
        kind = change.kind.value
        row("CWE", f"PGW-IDCHG^identity change^{LOCAL}", f"{kind}^{kind.replace('_', ' ')}^{LOCAL}")
        previous = change.detail.get("previous_serial") or change.detail.get("previous")
        if previous:
            row("ST", f"PGW-PREV^previous value^{LOCAL}", escape(previous))
    n += 1
    location = "^".join((escape(ward), escape(bed)))
    segments.append(f"OBX|{n}|PL|0^MDCX_LS_ATTR_LOCATION^MDC|LOC|{location}||||||F")
    text = SEGMENT_SEP.join(segments)
    msh = _msh(ctx, h, control_id, "ORU^R01^ORU_R01", PROFILE_PCD15, "NE", not text.isascii())
    return control_id, (msh + SEGMENT_SEP + text + SEGMENT_SEP).encode("utf-8")
