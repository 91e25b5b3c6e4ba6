"""Take signed drug-library releases from ``{prefix}/library/current`` and report the one in force.

The publisher subscribes to the topic in every session (:meth:`MqttPublisher.add_feed`); the
broker hands the retained release to every gateway that connects, so a gateway that was
offline applies the newest release on reconnect without anyone resending it. Messages are
taken on the event loop and only *noted* there (newest wins: an older pending message is
superseded, never queued); :meth:`LibraryFeed.run`, a supervised task, decodes and offers
the newest one to the :class:`ReleaseApplier`, which verifies off the loop.

This subscription cannot command a pump: at most it changes the library that *reported*
programs are checked against, and only to a release signed by a trusted pharmacy key.
"""

from __future__ import annotations

import asyncio
import hashlib

import structlog

from gateway.druglib.errors import LibraryError
from gateway.druglib.releases import InForce, ReleaseApplier
from gateway.mqtt.library_payloads import decode_release, in_force_payload
from gateway.mqtt.publisher import MqttPublisher

log = structlog.get_logger("pumpgw.mqtt.library")


def report_in_force(publisher: MqttPublisher, in_force: InForce) -> None:
    """Publish the release in force on ``{base}/library`` (retained; again after reconnects),
    whichever way it arrived -- the uptake report needs drop-folder gateways too."""
    t = publisher.topics
    publisher.set_retained(
        t.library,
        in_force_payload(
            site=t.site,
            gateway=t.gateway,
            version=in_force.version,
            serial=in_force.serial,
            sha256=in_force.sha256,
            signer_key_id=in_force.signer_key_id,
            applied_at=in_force.applied_at,
            source=in_force.source,
        ),
    )


class LibraryFeed:
    def __init__(self, publisher: MqttPublisher, applier: ReleaseApplier, *, max_bytes: int) -> None:
        self.publisher = publisher
        self.applier = applier
        self.max_bytes = max_bytes
        self.topic = publisher.topics.library_current
        self._pending: tuple[bytes, bool] | None = None
        self._wake = asyncio.Event()
        self.received = 0
        self.superseded = 0
        publisher.add_feed(self.topic, self._on_message)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self.received += 1
        if self._pending is not None:
            self.superseded += 1
        self._pending = (payload, retained)
        self._wake.set()

    async def run(self) -> None:
        """Supervised task: offer each newest release message to the applier."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending is None:
                continue
            payload, retained = self._pending
            self._pending = None
            where = f"mqtt {self.topic}" + (" (retained)" if retained else "")
            try:
                library, signature = decode_release(payload, where=where, max_bytes=self.max_bytes)
            except LibraryError as exc:
                self.applier.refuse(exc, source="mqtt", where=where, digest=hashlib.sha256(payload).hexdigest())
                continue
            await self.applier.offer_async(library, signature, source="mqtt", where=where)
