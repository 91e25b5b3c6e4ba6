"""Read back the clinical story a receiver was told, and count where it went wrong.

Pure: takes the HL7 messages a receiver accepted, in arrival order, and checks the invariants
pumpgw promises across restarts (design.md §2 inv. 9), per device (the MDS OBX-18):

* **orphaned onsets** -- a PCD-04 onset (OBR-3) that no end (OBR-29) ever names, counted
  only for alarms that are over (``active_ok`` lists the instance ids allowed to be open);
* **double ends** -- an onset ended more than once; **unknown parents** -- a continue or end
  naming an onset that was never sent;
* **start after start** -- a PCD-10 delivery start on a source channel whose previous
  delivery event was also a start (no stop or complete between);
* **lost online** -- a communication-offline event not followed by an online one for the same
  pump, when the pump is expected online at the end; **online without offline**.

A pump is keyed by its bed (PV1-3 point of care) when one is configured, else by OBX-18.

Duplicates of one message (same MSH-10, a resend after a crash mid-ACK) are counted once.
The restart tests and ``bench/restart_story.py`` both use it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from common.pcd.parse import parse_message


@dataclass
class StoryReport:
    messages: int = 0
    duplicates: int = 0
    onsets: int = 0
    orphaned_onsets: list[str] = field(default_factory=list)
    double_ends: list[str] = field(default_factory=list)
    unknown_parents: list[str] = field(default_factory=list)
    repeated_onsets: list[str] = field(default_factory=list)
    starts: int = 0
    start_after_start: list[str] = field(default_factory=list)
    offline: int = 0
    lost_online: list[str] = field(default_factory=list)
    online_without_offline: list[str] = field(default_factory=list)
    devices_per_location: dict[str, set[str]] = field(default_factory=dict)
    open_onsets: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.orphaned_onsets
            or self.double_ends
            or self.unknown_parents
            or self.repeated_onsets
            or self.start_after_start
            or self.lost_online
            or self.online_without_offline
        )

    def summary(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "duplicates": self.duplicates,
            "onsets": self.onsets,
            "orphaned_onsets": len(self.orphaned_onsets),
            "double_ends": len(self.double_ends),
            "unknown_parents": len(self.unknown_parents),
            "repeated_onsets": len(self.repeated_onsets),
            "starts": self.starts,
            "start_after_start": len(self.start_after_start),
            "offline": self.offline,
            "lost_online": len(self.lost_online),
            "online_without_offline": len(self.online_without_offline),
        }


def _mds_device(msg) -> str:
    for obx in msg.named("OBX"):
        if obx.field(18):
            return obx.field(18)
    return ""


def check_story(raws: Iterable[bytes], *, active_ok: Iterable[str] = (), offline_ok: Iterable[str] = ()) -> StoryReport:
    """``active_ok``: alert instance ids that may still be open; ``offline_ok``: devices that
    may still be offline at the end (OBX-18 values)."""
    report = StoryReport()
    seen: set[str] = set()
    onsets: dict[str, str] = {}  # instance id -> device
    ends: dict[str, int] = defaultdict(int)
    last_delivery: dict[tuple[str, str], str] = {}
    comm: dict[str, str] = {}
    for raw in raws:
        msg = parse_message(raw)
        msh = msg.msh
        if msh is None:
            continue
        control_id = msh.field(10)
        if control_id in seen:
            report.duplicates += 1
            continue
        seen.add(control_id)
        report.messages += 1
        trigger = msh.component(9, 2)
        device = _mds_device(msg)
        pv1 = msg.named("PV1")
        bed = pv1[0].component(3, 3) if pv1 else ""
        if bed and device:
            report.devices_per_location.setdefault(bed, set()).add(device)
        # The pump: its bed (PV1-3 point of care) when configured, which also covers a pump that
        # went offline before it was ever identified; else the device identity in OBX-18.
        device = f"bed {bed}" if bed else device
        if trigger == "R40":
            obr = msg.named("OBR")[0]
            phase = next((o.field(5) for o in msg.named("OBX") if o.component(3, 2) == "MDC_ATTR_EVENT_PHASE"), "")
            if phase == "start":
                instance = obr.component(3, 1)
                report.onsets += 1
                if instance in onsets:
                    report.repeated_onsets.append(instance)
                onsets[instance] = device
            else:
                parent = obr.component(29, 2).split("&")[0] if obr.field(29) else ""
                if parent not in onsets:
                    report.unknown_parents.append(parent)
                if phase == "end":
                    ends[parent] += 1
        elif trigger == "R42":
            rows = {o.component(3, 2): o for o in msg.named("OBX")}
            cond = rows.get("MDC_ATTR_EVT_COND")
            if cond is None:
                continue
            event = cond.component(5, 2)
            if event == "MDC_EVT_COMM_STATUS_CHANGE":
                status = cond.component(5, 9)
                if status == "comm-status-offline":
                    report.offline += 1
                elif comm.get(device) != "comm-status-offline":
                    report.online_without_offline.append(device)
                comm[device] = status
                continue
            source = rows["MDC_ATTR_EVT_SOURCE"].field(5) if "MDC_ATTR_EVT_SOURCE" in rows else ""
            label = rows.get("MDC_DEV_PUMP_SOURCE_CHANNEL_LABEL")
            key = (device, label.field(5) if label is not None else source)  # OBX-4 numbers may move
            if event == "MDC_EVT_PUMP_DELIV_START":
                report.starts += 1
                if last_delivery.get(key) == "start":
                    report.start_after_start.append(f"{key[0]} channel {key[1]}")
                last_delivery[key] = "start"
            elif event in ("MDC_EVT_PUMP_DELIV_STOP", "MDC_EVT_PUMP_DELIV_COMP"):
                last_delivery[key] = "stop"
    allowed = set(active_ok)
    for instance, device in onsets.items():
        n = ends.get(instance, 0)
        if n > 1:
            report.double_ends.append(instance)
        if n == 0:
            report.open_onsets.append(instance)
            if instance not in allowed:
                report.orphaned_onsets.append(f"{device} {instance}")
    offline_allowed = set(offline_ok)
    report.lost_online = [d for d, s in comm.items() if s == "comm-status-offline" and d not in offline_allowed]
    return report
