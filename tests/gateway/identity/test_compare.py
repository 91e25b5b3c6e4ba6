"""Identity comparison rules: what is a swap, a firmware change, a return, an unreadable identity."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from drivers.model import PumpIdentity
from gateway.events.model import EventKind
from gateway.identity import DeviceRecord, SlotRecord, compare

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
ALARIS = PumpIdentity("BD", "Asena GH", "8002-51740", "Rev 2.1.5")


def _known(**changes) -> SlotRecord:
    record = replace(SlotRecord.first("bed03", ALARIS, T0, "MT-0042"), **changes)
    return record


def _kinds(result) -> list[EventKind]:
    return [c.kind for c in result.changes]


def test_first_sighting_registers_without_an_event():
    result = compare("bed03", None, ALARIS, T0, asset_tag="MT-0042", complete=True, seen_before=None)
    assert result.changes == [] and result.new_device
    assert result.record.asset_tag == "MT-0042" and result.record.asset_serial == ALARIS.serial_number


def test_another_serial_contradicting_the_asset_tag_is_a_swap_logged_as_error():
    new = replace(ALARIS, serial_number="8002-99999")
    result = compare(
        "bed03", _known(), new, T0 + timedelta(hours=1), asset_tag="MT-0042", complete=True, seen_before=None
    )
    assert _kinds(result) == [EventKind.DEVICE_SWAPPED]
    change = result.changes[0]
    assert change.severity == "error" and change.detail["contradicts_asset_tag"] == "true"
    assert change.detail["previous_serial"] == "8002-51740" and change.detail["serial"] == "8002-99999"
    assert result.record.serial_number == "8002-99999" and result.record.first_seen == T0 + timedelta(hours=1)


def test_a_swap_without_an_asset_tag_is_a_warning():
    result = compare(
        "bed03",
        _known(asset_tag=None, asset_serial=None),
        replace(ALARIS, serial_number="X"),
        T0,
        asset_tag=None,
        complete=True,
        seen_before=None,
    )
    assert _kinds(result) == [EventKind.DEVICE_SWAPPED] and result.changes[0].severity == "warning"


def test_a_serial_seen_before_elsewhere_is_also_a_return():
    before = DeviceRecord("BD", "8002-11111", "Asena GH", T0 - timedelta(days=90), T0 - timedelta(days=30), "bed07")
    result = compare(
        "bed03",
        _known(),
        replace(ALARIS, serial_number="8002-11111"),
        T0,
        asset_tag="MT-0042",
        complete=True,
        seen_before=before,
    )
    assert _kinds(result) == [EventKind.DEVICE_SWAPPED, EventKind.DEVICE_RETURNED]
    assert result.changes[1].detail["last_slot"] == "bed07"


def test_firmware_change_of_the_same_device():
    result = compare(
        "bed03",
        _known(),
        replace(ALARIS, firmware="Rev 2.2.0"),
        T0,
        asset_tag="MT-0042",
        complete=False,
        seen_before=None,
    )
    assert _kinds(result) == [EventKind.FIRMWARE_CHANGED]
    assert result.changes[0].detail["previous"] == "Rev 2.1.5" and result.changes[0].detail["current"] == "Rev 2.2.0"
    assert result.record.firmware == "Rev 2.2.0" and result.record.first_seen == T0


def test_pump_library_change():
    known = _known(drug_library_version="2026-10")
    result = compare(
        "bed03",
        known,
        replace(ALARIS, drug_library_version="2026-11"),
        T0,
        asset_tag="MT-0042",
        complete=False,
        seen_before=None,
    )
    assert _kinds(result) == [EventKind.PUMP_LIBRARY_CHANGED]


def test_a_snapshot_without_serial_is_not_a_change_but_an_identify_without_it_is_unreadable():
    partial = replace(ALARIS, serial_number=None)
    assert compare("bed03", _known(), partial, T0, asset_tag="MT-0042", complete=False, seen_before=None).changes == []
    result = compare("bed03", _known(), partial, T0, asset_tag="MT-0042", complete=True, seen_before=None)
    assert _kinds(result) == [EventKind.IDENTITY_UNREADABLE]
    again = compare("bed03", result.record, partial, T0, asset_tag="MT-0042", complete=True, seen_before=None)
    assert again.changes == []  # reported once until readable again
    back = compare("bed03", again.record, ALARIS, T0, asset_tag="MT-0042", complete=True, seen_before=None)
    assert back.changes == [] and back.record.unreadable_since is None


def test_without_serials_a_model_change_is_the_swap():
    ne = PumpIdentity("New Era Pump Systems", "NE-1000", None, "3.928")
    known = SlotRecord.first("bed05", ne, T0, None)
    result = compare("bed05", known, replace(ne, model="NE-300"), T0, asset_tag=None, complete=True, seen_before=None)
    assert _kinds(result) == [EventKind.DEVICE_SWAPPED]


def test_the_asset_tag_stays_bound_to_the_registered_device_after_a_swap():
    swapped = compare(
        "bed03", _known(), replace(ALARIS, serial_number="B"), T0, asset_tag="MT-0042", complete=True, seen_before=None
    ).record
    assert swapped.asset_serial == ALARIS.serial_number
    back = compare("bed03", swapped, ALARIS, T0, asset_tag="MT-0042", complete=True, seen_before=None)
    assert back.changes[0].severity == "warning"  # the registered device is back: no contradiction
