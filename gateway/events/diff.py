"""Delivery events of one channel from two of its states (IHE IPEC, ihe-pcd.md §8.3-§8.4).

Pure functions. ``previous`` is the channel's last *known* state (never ``UNKNOWN``; the tracker
carries the last known one across polls whose state could not be decoded) or ``None`` when
the channel was not there before. A channel delivers its program only while ``INFUSING``; KVO
after completion is not the program being delivered, so ``KVO -> INFUSING`` is a new start.

IPEC has no "paused" and no "program changed" event (Table M.1.2.1-4): a pause is a stop, and
any change of rate, dose, VTBI, drug or concentration of a running infusion is a stop
(``transitioning``) immediately followed by a start, both at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drivers.model import ChannelSnapshot, ChannelState, PumpSnapshot
from gateway.events.model import EventKind, PumpEvent

# Fields whose change while infusing is a titration (rate/dose) or another program change.
TITRATION_FIELDS = ("rate", "dose_rate")
PROGRAM_FIELDS = ("rate", "dose_rate", "vtbi", "drug", "concentration")
# A program is present while any of these is set (program cleared: all go from set to absent).
PROGRAM_PRESENCE_FIELDS = ("rate", "vtbi", "drug")

# Not-delivering reasons carried in ``detail["reason"]`` (IPEC pump-stopped-* enumerations,
# ihe-pcd.md §8.5, plus the two structural ones pumpgw adds).
REASON_ALARMING = "alarming"
REASON_NOT_SPECIFIED = "not_specified"
REASON_TRANSITIONING = "transitioning"
REASON_CHANNEL_REMOVED = "channel_removed"
REASON_DEVICE_REPLACED = "device_replaced"


@dataclass(frozen=True, slots=True)
class DeliveryChange:
    """One delivery event to emit for a channel, before it gets a pump, a time and a snapshot."""

    kind: EventKind
    detail: dict[str, str] = field(default_factory=dict)

    def event(
        self, pump_id: str, at: datetime, snapshot: PumpSnapshot, channel_id: str, previous: ChannelSnapshot | None
    ) -> PumpEvent:
        return PumpEvent(
            self.kind,
            pump_id,
            at,
            channel_id=channel_id,
            snapshot=snapshot,
            detail=self.detail,
            previous_channel=previous,
        )


def is_delivering(channel: ChannelSnapshot | None) -> bool:
    return channel is not None and channel.state is ChannelState.INFUSING


def has_program(channel: ChannelSnapshot | None) -> bool:
    return channel is not None and any(getattr(channel, name) is not None for name in PROGRAM_PRESENCE_FIELDS)


def program_changes(previous: ChannelSnapshot, current: ChannelSnapshot) -> tuple[str, ...]:
    """Names of program fields that differ; ``None`` counts as a value (basic vs library infusion)."""
    return tuple(name for name in PROGRAM_FIELDS if getattr(previous, name) != getattr(current, name))


def reached_vtbi(previous: ChannelSnapshot | None, current: ChannelSnapshot) -> bool:
    """Volume infused has reached a positive VTBI (same unit; a VTBI of 0 is not a limit here)."""
    vtbi = current.vtbi if current.vtbi is not None else (previous.vtbi if previous is not None else None)
    infused = current.volume_infused
    if vtbi is None or infused is None or vtbi.unit != infused.unit or vtbi.value <= 0:
        return False
    return infused.value >= vtbi.value


def diff_delivery(
    previous: ChannelSnapshot | None, current: ChannelSnapshot, *, baseline: bool = False
) -> list[DeliveryChange]:
    """Delivery events of one channel between two known states, in the order they happened.

    ``baseline`` marks the first state seen after start-up (or after a device swap): a running
    infusion is then reported as a start flagged ``baseline=true`` so consumers can tell it
    from a start actually observed.
    """
    if current.state is ChannelState.UNKNOWN:
        return []
    was, now = is_delivering(previous), is_delivering(current)
    changes: list[DeliveryChange] = []
    if was and now:
        assert previous is not None
        changed = program_changes(previous, current)
        if changed:
            transition = "titration" if set(changed) <= set(TITRATION_FIELDS) else "program_change"
            shared = {"transition": transition, "changed": ",".join(changed)}
            changes.append(DeliveryChange(EventKind.DELIVERY_STOP, {**shared, "reason": REASON_TRANSITIONING}))
            changes.append(DeliveryChange(EventKind.DELIVERY_START, dict(shared)))
        return changes
    if now:
        changes.append(DeliveryChange(EventKind.DELIVERY_START, {"baseline": "true"} if baseline else {}))
        return changes
    if was:
        if current.state is ChannelState.KVO:
            completed_by = "kvo"
        elif reached_vtbi(previous, current):
            completed_by = "volume"
        else:
            completed_by = None
        to_state = current.state.value
        if completed_by is not None:
            changes.append(DeliveryChange(EventKind.DELIVERY_COMPLETE, {"to_state": to_state, "by": completed_by}))
        else:
            reason = REASON_ALARMING if current.state is ChannelState.ALARM else REASON_NOT_SPECIFIED
            changes.append(DeliveryChange(EventKind.DELIVERY_STOP, {"to_state": to_state, "reason": reason}))
    if has_program(previous) and not has_program(current):
        changes.append(DeliveryChange(EventKind.PROGRAM_CLEARED, {"to_state": current.state.value}))
    return changes


def closing_delivery(previous: ChannelSnapshot | None, reason: str) -> list[DeliveryChange]:
    """A channel that can no longer be observed (module removed, device replaced) while delivering."""
    if not is_delivering(previous):
        return []
    return [DeliveryChange(EventKind.DELIVERY_STOP, {"reason": reason})]
