"""What the outbox tells people: alerts and log lines for thinning, the byte budget,
quarantined and expired messages -- each condition once per crossing, never once per commit.

An alert is itself committed (MQTT .../alerts), so alerting on every commit while over budget
would feed itself. Peer text (a receiver's ACK text often echoes patient data) stays in the
database (`pumpgw outbox show`), never in logs or alerts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.log import get_logger
from gateway.outbox import budget
from gateway.outbox.model import OutboxMessage

log = get_logger("pumpgw.outbox")

AlertHook = Callable[[str, dict], None]
SUMMARY_INTERVAL_S = 60.0  # at most one thinning summary per minute


class Reporter:
    def __init__(self, on_alert: AlertHook | None) -> None:
        self.on_alert = on_alert
        self.over_budget = False  # alert on crossing the budget, not on every commit
        self._thinning = False  # in a thinning episode: one alert per crossing
        self._summary: dict[str, int] = {}
        self._summary_bytes = 0
        self._summary_at = float("-inf")

    def alert(self, name: str, details: dict) -> None:
        if self.on_alert is None:
            return
        try:
            self.on_alert(name, details)
        except Exception:
            log.exception("outbox alert hook failed", alert=name)

    def budget(self, outcome: budget.BudgetOutcome, *, budget_bytes: int, disk_full: bool) -> None:
        """One alert per crossing, one summary a minute (gateway.outbox.budget)."""
        now = time.monotonic()
        if outcome.thinned:
            for lane, count in outcome.thinned.items():
                self._summary[lane] = self._summary.get(lane, 0) + count
            self._summary_bytes += outcome.thinned_bytes
            if not self._thinning:
                self._thinning = True
                details = {
                    "thinned": dict(outcome.thinned),
                    "thinned_bytes": outcome.thinned_bytes,
                    "level": outcome.level,
                    "compacted_delivered": outcome.compacted,
                    "bytes": outcome.used,
                    "max_bytes": budget_bytes,
                }
                log.warning(
                    "outbox byte budget reached: thinning older periodic observations",
                    **_fields(details),
                )
                self.alert("outbox_budget_thinned", details)
                self._summary, self._summary_bytes, self._summary_at = {}, 0, now
        if self._summary and now - self._summary_at >= SUMMARY_INTERVAL_S:
            log.warning(
                "outbox thinning summary",
                thinned=self._summary,
                thinned_bytes=self._summary_bytes,
                bytes=outcome.used,
                max_bytes=budget_bytes,
            )
            self._summary, self._summary_bytes, self._summary_at = {}, 0, now
        if disk_full:
            return  # the disk-full ERROR and alert stand for this condition; no flip-flop per commit
        if outcome.still_over and not self.over_budget:
            self.over_budget = True
            details = {"bytes": outcome.used, "max_bytes": budget_bytes}
            log.error("outbox over its byte budget with nothing left to thin (events and alarms are kept)", **details)
            self.alert("outbox_budget_exceeded", details)
        elif self.over_budget and not outcome.still_over and outcome.used <= budget_bytes * budget.LOW_WATER:
            # back under only well under: the WAL file counts in ``used`` and shrinks when a
            # checkpoint restarts it, so a backlog sitting at the budget would otherwise cross
            # it again and again (one alert per WAL restart instead of one per crossing)
            self.over_budget = False
            log.warning("outbox back under its byte budget", bytes=outcome.used, max_bytes=budget_bytes)

    @property
    def thinning(self) -> bool:
        return self._thinning

    def end_thinning_episode(self, backlog: int, budget_bytes: int) -> None:
        """Once the backlog has drained below half the budget, a new thinning is a new crossing."""
        if not self._thinning or backlog >= budget_bytes * budget.RELEASE:
            return
        self._thinning = False
        if self._summary:
            log.warning("outbox thinning summary", thinned=self._summary, thinned_bytes=self._summary_bytes)
            self._summary, self._summary_bytes = {}, 0
        log.info(
            "outbox backlog well under its byte budget again; thinning episode over",
            pending_bytes=backlog,
            max_bytes=budget_bytes,
        )

    def quarantined(self, msg: OutboxMessage) -> None:
        details = {
            "lane": msg.lane,
            "id": msg.id,
            "kind": msg.kind,
            "control_id": msg.control_id,
            "reason": msg.reason,
            "ack_text_chars": len(msg.ack_text),
        }
        log.error("outbox message quarantined", **details)
        self.alert("message_quarantined", details)

    def expired(self, lane: str, expired: Sequence[OutboxMessage]) -> None:
        if not expired:
            return
        details = {
            "lane": lane,
            "count": len(expired),
            "kinds": sorted({m.kind for m in expired}),
            "ids": [m.id for m in expired[:20]],
        }
        log.warning("outbox messages expired before delivery (kept as expired)", **details)
        self.alert("messages_expired", details)


def _fields(details: dict) -> dict:
    """An alert's details as log fields: "level" (the thinning level) would collide with the
    log line's own level, so the line calls it ``thinning_level``."""
    fields = dict(details)
    if "level" in fields:
        fields["thinning_level"] = fields.pop("level")
    return fields
