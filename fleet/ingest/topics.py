"""Parse the gateways' MQTT topic tree (the contract; docs/mqtt.md), without importing the gateway.

::

    {prefix}/{site}/{gateway}/status | inventory | alerts | library
    {prefix}/{site}/{gateway}/pumps/{pump}/availability | state | events | alarms
    {prefix}/library/current                       the pharmacy's signed release (retained)
    {prefix}/rebirth, {prefix}/{site}/{gateway}/rebirth   requests by consumers: ignored here

A topic outside this tree is not an error of the sender we can fix; :func:`parse_topic`
returns ``None`` and the collector records it as rejected (never silently dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY_LEAVES = frozenset({"status", "inventory", "alerts", "library"})
PUMP_LEAVES = frozenset({"availability", "state", "events", "alarms"})
IGNORED_LEAVES = frozenset({"rebirth"})


@dataclass(frozen=True, slots=True)
class Topic:
    """Where a message came from. ``kind`` is the leaf (``events``...) or ``release``."""

    kind: str
    site: str = ""
    gateway: str = ""
    pump: str = ""


def subscription(prefix: str) -> str:
    """The one filter the collector subscribes to (everything below the prefix)."""
    return f"{prefix.rstrip('/')}/#"


def parse_topic(prefix: str, topic: str) -> Topic | None:
    """``Topic`` for a known topic below ``prefix``; ``Topic('ignored')`` for rebirth; else ``None``."""
    prefix = prefix.rstrip("/")
    if not topic.startswith(prefix + "/"):
        return None
    levels = topic[len(prefix) + 1 :].split("/")
    if any(not level for level in levels):
        return None
    if levels == ["library", "current"]:
        return Topic("release")
    if levels == ["rebirth"]:
        return Topic("ignored")
    if len(levels) == 3 and levels[2] in GATEWAY_LEAVES | IGNORED_LEAVES:
        site, gateway, leaf = levels
        return Topic("ignored" if leaf in IGNORED_LEAVES else leaf, site, gateway)
    if len(levels) == 5 and levels[2] == "pumps" and levels[4] in PUMP_LEAVES:
        site, gateway, _, pump, leaf = levels
        return Topic(leaf, site, gateway, pump)
    return None
