"""The latest-state topics: the newest payload per topic, and which of them are due to publish.

Latest state is coalesced (docs/mqtt.md, "Delivery semantics"): ten state updates of a pump
while the broker is away are one publish when it returns, because only the newest payload of
a topic is kept. Every (re)connect and rebirth request makes all of them due again. Topics
marked *expiring* are published with an MQTT 5 message expiry that the heartbeat renews, so a
dead gateway's "online" does not outlive it.

Nothing here does I/O: the producer writes, the session publishes what is due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class RetainedTopics:
    def __init__(self) -> None:
        self._payloads: dict[str, bytes] = {}
        self._due: dict[str, None] = {}  # insertion-ordered set: publish order
        self._expiring: set[str] = set()
        self.changed = asyncio.Event()  # set when a topic became due

    def set(self, topic: str, payload: bytes, *, expires: bool = False, due: bool = True) -> None:
        """Keep ``payload`` as the topic's newest; ``due=False`` when the caller publishes it itself."""
        if expires:
            self._expiring.add(topic)
        else:
            self._expiring.discard(topic)
        self._payloads[topic] = payload
        if due:
            self._due[topic] = None
            self.changed.set()

    def payload(self, topic: str) -> bytes:
        return self._payloads[topic]

    def expires(self, topic: str) -> bool:
        return topic in self._expiring

    def expiring(self) -> list[str]:
        return list(self._expiring)

    def take_due(self) -> list[str]:
        """The due topics in order; they are no longer due (see :meth:`mark_due` on failure)."""
        self.changed.clear()
        topics = list(self._due)
        self._due.clear()
        return topics

    def mark_due(self, topics: Iterable[str]) -> None:
        """Publish these again (not acknowledged before the session ended, or a heartbeat)."""
        for topic in topics:
            self._due.setdefault(topic, None)
        self.changed.set()

    def all_due(self, *, first: str | None = None, skip: str | None = None) -> None:
        """Make every topic due: ``first`` ahead of the others (a rebirth leads with the
        status), ``skip`` where it already is (just published by the birth)."""
        order = [first] if first is not None and first in self._payloads else []
        order += [t for t in self._payloads if t not in (first, skip)]
        for topic in order:
            self._due.pop(topic, None)
        self._due = {**dict.fromkeys(order), **self._due}
        self.changed.set()
