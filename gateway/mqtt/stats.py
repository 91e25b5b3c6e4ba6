"""Counters of the MQTT side, shared by its parts: the status page and the tests read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PublisherStats:
    connected: bool = False
    connect_attempts: int = 0
    sessions: int = 0
    auth_failures: int = 0
    last_error: str | None = None
    last_delay_s: float | None = None
    delivered: int = 0
    retained_published: int = 0
    rebirths: int = 0
    rebirths_coalesced: int = 0  # requests within rebirth_min_interval_s of the last rebirth
    inbound_refused: int = 0  # inbound payloads over their size limit
    heartbeats: int = 0

    def note_error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
