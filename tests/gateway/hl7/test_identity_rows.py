"""Identity rows in the PCD-01 MDS and the MEM-DMC-style CMMS report: any identity text survives
ER7 escaping, round-trips through two independent parsers, and passes the conformance checker."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import hl7
from hypothesis import given, settings
from hypothesis import strategies as st

from common.pcd.conformance import check_message
from common.pcd.parse import parse_message
from drivers.model import PumpIdentity
from gateway.events.model import EventKind
from gateway.hl7 import encode_pcd01
from gateway.hl7.dmc import encode_dmc
from gateway.identity import Change, SlotRecord
from tests.gateway.hl7.conftest import make_context, one_channel_pump

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
# printable text incl. the ER7 delimiters and non-ASCII; no control characters (a pump reply
# with those is refused by the drivers before it gets here)
text = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\x7f"), min_size=1, max_size=24
).filter(lambda s: s.strip() == s and s.strip())


def _obx(raw: bytes) -> dict[str, str]:
    """OBX-3 mnemonic -> OBX-5 via python-hl7 (independent of our parser), unescaped."""
    msg = hl7.parse(raw.decode("utf-8"))
    out = {}
    for seg in msg.segments("OBX"):
        out[str(seg[3][0][1])] = msg.unescape(str(seg[5]))
    return out


@settings(max_examples=80, deadline=None)
@given(serial=text, firmware=text, model=text, tag=text)
def test_pcd01_identity_rows_round_trip_any_text(serial, firmware, model, tag):
    snapshot = one_channel_pump()
    snapshot = replace(
        snapshot, identity=replace(snapshot.identity, serial_number=serial, firmware=firmware, model=model)
    )
    ctx = make_context()
    ctx.pumps["bed07-a"] = replace(ctx.pumps["bed07-a"], asset_tag=tag)
    _cid, raw = encode_pcd01(snapshot, ctx, pump_id="bed07-a")
    rows = _obx(raw)
    assert rows["MDC_ID_PROD_SPEC_SERIAL"] == serial and rows["MDC_ID_PROD_SPEC_FW"] == firmware
    assert rows["MDC_ATTR_ID_SOFT"] == tag and rows["MDC_ATTR_ID_MODEL"] == f"manufacturer=PUMPVENDOR model={model}"
    ours = {s.component(3, 2): s for s in parse_message(raw).named("OBX")}
    assert ours["MDC_ID_PROD_SPEC_SERIAL"].field(4).startswith(ours["MDC_ATTR_ID_PROD_SPECN"].field(4) + ".")
    assert check_message(raw) == []


def test_no_serial_row_for_a_protocol_without_serial_numbers():
    snapshot = one_channel_pump()
    snapshot = replace(snapshot, identity=PumpIdentity("New Era Pump Systems", "NE-1000", None, "3.928"))
    _cid, raw = encode_pcd01(snapshot, make_context(), pump_id="bed07-a")
    rows = _obx(raw)
    assert "MDC_ID_PROD_SPEC_SERIAL" not in rows and rows["MDC_ID_PROD_SPEC_FW"] == "3.928"
    assert "MDC_ATTR_ID_SOFT" not in rows  # no asset tag configured


@settings(max_examples=60, deadline=None)
@given(serial=text, previous=text, tag=text, bed=text)
def test_dmc_report_carries_the_device_and_the_change_and_no_patient(serial, previous, tag, bed):
    record = SlotRecord("bed07-a", "BD", "Asena GH", serial, "Rev 2", None, None, tag, previous, T0, T0)
    change = Change(EventKind.DEVICE_SWAPPED, {"previous_serial": previous, "serial": serial}, "error")
    _cid, raw = encode_dmc(record, [change], make_context(), ward="icu-3", bed=bed)
    msg = hl7.parse(raw.decode("utf-8"))
    assert str(msg.segment("MSH")[21]).startswith("IHE_PCD_015")
    assert str(msg.segment("OBR")[4]) == "69135^MDC_OBS_MEM^MDC"
    pid = msg.segment("PID")
    assert all(not str(pid[i]) for i in range(1, 31)) and str(pid[31]) == "Y"
    rows = _obx(raw)
    assert rows["MDC_ID_PROD_SPEC_SERIAL"] == serial and rows["MDC_ATTR_ID_SOFT"] == tag
    assert rows["previous value"] == previous
    location = [s for s in msg.segments("OBX") if str(s[3][0][1]) == "MDCX_LS_ATTR_LOCATION"][0]
    assert msg.unescape(str(location[5][0][1])) == bed
