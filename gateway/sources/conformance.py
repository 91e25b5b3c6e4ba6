"""Conformance findings of inbound messages, judged after the ACK (``conformance = "report"``).

Why off the ACK path: the checker (common/pcd/conformance) costs more CPU than the rest of what
a message causes, and in report mode its findings change nothing the sender is told -- the ACK
answers for the commit alone (bench/source_bench.py, issue 13). So the handler only queues the
parsed message, and this reporter, a task of the source's listener (its lifetime is the
listener's, under the supervisor), checks it and logs the findings a moment later.

Bounded (design.md §2 inv. 8): at most ``max_messages`` messages and ``max_bytes`` of their text
wait. A message that finds the queue full is not checked: it is counted
(``conformance_unchecked``) and logged at WARNING with its control id -- a finding is never lost
silently. Messages still waiting when the source stops are counted and logged the same way.

With ``conformance = "refuse_errors"`` the checker decides the answer (AE) and stays on the path
(handler.py calls :func:`report_findings` itself).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from common.pcd.conformance import Finding, check_message
from common.pcd.parse import Message

# Queued messages are kept parsed (no second parse): ~10x their text in memory (a 2 KB
# PCD-01 holds ~20 KB), so these bounds mean ~5 MB for ordinary messages, ~20 MB at worst.
MAX_MESSAGES = 256
MAX_BYTES = 2 * 1024 * 1024  # of message text
SLICE_S = 0.002  # checker time per loop turn (a PCD-01 of 20 segments takes ~0.1 ms)


def report_findings(log: Any, control_id: str, kind: str, findings: list[Finding]) -> None:
    """Rule ids and counts at INFO; each finding quotes the sender's values, so DEBUG only."""
    if not findings:
        return
    log.info(
        "inbound message has conformance findings",
        control_id=control_id,
        kind=kind,
        findings=len(findings),
        rules=sorted({f.rule for f in findings}),
    )
    for f in findings:
        log.debug("conformance finding", control_id=control_id, finding=str(f))


class ConformanceReporter:
    def __init__(
        self, log: Any, counters: dict[str, int], *, max_messages: int = MAX_MESSAGES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.log = log
        self.counters = counters
        for name in ("conformance_checked", "conformance_unchecked", "with_findings"):
            counters.setdefault(name, 0)
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self._queue: deque[tuple[Message, str, str]] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()  # nothing waits to be checked
        self._idle.set()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def submit(self, message: Message, control_id: str, kind: str) -> bool:
        """Queue ``message`` for checking; False (counted, logged) when the queue is full."""
        size = len(message.text)
        if len(self._queue) >= self.max_messages or self._bytes + size > self.max_bytes:
            self._unchecked(1, "queue full", control_id=control_id, kind=kind)
            return False
        self._queue.append((message, control_id, kind))
        self._bytes += size
        self._ready.set()
        self._idle.clear()
        return True

    async def run(self) -> None:
        """Check queued messages until cancelled, in slices of at most ``SLICE_S`` per loop
        turn: an ACK waits at most one slice, and a burst of many connections is still
        checked rather than overflowing the queue one message per turn."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._ready.wait()
                while self._queue:
                    until = loop.time() + SLICE_S
                    while self._queue and loop.time() < until:
                        message, control_id, kind = self._queue.popleft()
                        self._bytes -= len(message.text)
                        self._check(message, control_id, kind)
                    await asyncio.sleep(0)
                self._ready.clear()
                self._idle.set()
        finally:
            if self._queue:
                self._unchecked(len(self._queue), "source stopping")
                self._queue.clear()
                self._bytes = 0
                self._idle.set()

    async def drain(self) -> None:
        """Wait until every queued message is checked (tests, the bench)."""
        await self._idle.wait()

    def _check(self, message: Message, control_id: str, kind: str) -> None:
        try:
            findings = check_message(message)
        except Exception as exc:  # a checker defect must not stop the reporting of later messages
            self.counters["conformance_unchecked"] += 1
            self.log.error("conformance checker failed", control_id=control_id, kind=kind, error=type(exc).__name__)
            return
        self.counters["conformance_checked"] += 1
        if findings:
            self.counters["with_findings"] += 1
        report_findings(self.log, control_id, kind, findings)

    def _unchecked(self, count: int, reason: str, **fields: str) -> None:
        self.counters["conformance_unchecked"] += count
        self.log.warning(
            "inbound message(s) not checked for conformance",
            messages=count,
            reason=reason,
            unchecked_total=self.counters["conformance_unchecked"],
            **fields,
        )
