"""Titration per TF2-R10 Table M.1.2.1-4: a stop that documents the *old* program with
``pump-delivery-status-transitioning``, then a start with the new one, both at the same time."""

from __future__ import annotations

from common.pcd.conformance import check_message
from common.pcd.parse import parse_message
from gateway.events.model import EventKind
from gateway.hl7 import encode_pcd10
from tests.gateway.hl7.conftest import make_context
from tests.gateway.hl7.test_golden import titration_events


def values(message: bytes) -> dict[str, str]:
    return {
        s.component(3, 2): s.field(5) if s.field(2) != "CWE" else s.component(5, 2)
        for s in parse_message(message).named("OBX")
    }


def test_the_stop_half_carries_the_old_program_and_transitioning_and_the_start_the_new_one():
    stop, start = titration_events()
    assert (stop.kind, start.kind) == (EventKind.DELIVERY_STOP, EventKind.DELIVERY_START)
    assert stop.occurred_at == start.occurred_at
    old, new = values(encode_pcd10(stop, make_context())[1]), values(encode_pcd10(start, make_context())[1])
    assert old["MDC_ATTR_EVT_COND"] == "MDC_EVT_PUMP_DELIV_STOP"
    assert old["MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS"] == "pump-delivery-status-transitioning"
    assert (old["MDC_FLOW_FLUID_PUMP"], old["MDC_RATE_DOSE"], old["MDC_FLOW_FLUID_PUMP_CURRENT"]) == (
        "15.4",
        "5.00",
        "15.4",
    )
    assert "MDC_DEV_PUMP_NOT_DELIVERING_REASON" not in old  # transitioning is not "not delivering"
    assert old["MDC_VOL_FLUID_DELIV_TOTAL"] == "2.6"  # the volume as of the change
    assert new["MDC_ATTR_EVT_COND"] == "MDC_EVT_PUMP_DELIV_START"
    assert new["MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS"] == "pump-delivery-status-delivering"
    assert (new["MDC_FLOW_FLUID_PUMP"], new["MDC_RATE_DOSE"]) == ("20.0", "6.50")
    for row in (old, new):  # Table M.1.2.1-1: all three delivery-info parameters
        assert {"MDC_PUMP_INFUSING_STATUS", "MDC_FLOW_FLUID_PUMP_CURRENT", "MDC_DEV_PUMP_ACTIVE_SOURCES"} <= set(row)


def test_both_titration_messages_pass_the_checker():
    for event in titration_events():
        assert check_message(encode_pcd10(event, make_context())[1]) == []
