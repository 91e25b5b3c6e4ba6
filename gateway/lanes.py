"""Outbox lane names: the one place that says which lane a message travels on.

A lane is one ordered queue in the outbox with one sender task. Every HL7 destination has a
data lane named after it and, when it takes PCD-04, an alarm lane ``<name>.alarms`` so an alarm
never waits behind periodic data (design.md §2 inv. 4). MQTT has an events lane and an alarms
lane for the same reason. Gateway technical alerts travel on the MQTT events lane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config.model import MessageKind, MllpDestination

ALARM_LANE_SUFFIX = ".alarms"
MQTT_EVENTS = "mqtt-events"
MQTT_ALARMS = "mqtt-alarms"


def lane_for(destination: MllpDestination, kind: MessageKind) -> str:
    """The lane of a message kind (``pcd01``, ``pcd04``, ``pcd10``) at one destination."""
    return destination.name + (ALARM_LANE_SUFFIX if kind == "pcd04" else "")


def lanes(destination: MllpDestination) -> list[str]:
    """The outbox lanes (one sender task each) a destination needs."""
    names = [destination.name] if set(destination.messages) - {"pcd04"} else []
    if "pcd04" in destination.messages:
        names.append(destination.name + ALARM_LANE_SUFFIX)
    return names
