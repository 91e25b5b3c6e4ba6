"""The roots of every exception pumpgw raises on purpose, grouped by what the caller does next.

They live in ``common`` so that ``gateway``, ``drivers`` and the simulators share one base
without importing each other (design.md §4: ``drivers`` never imports ``gateway``).

* :class:`RetryLater` -- storage busy, connection lost, delivery failed, a pump silent: the same
  work can succeed later. Keep the input (the same bytes) and try again after backoff.
* :class:`BadInput` -- an encode, payload, frame, file or configuration problem: this input will
  never succeed. Report it (what and where) and move on to the next input.
* Directly under :class:`PumpgwError` ("stop") -- neither: a person must act before the daemon
  can go on (a corrupt or foreign outbox file, a lock held by another daemon, a programming
  error such as a command outside the read-only allowlist). Callers do not catch these; they
  reach the supervisor or the CLI, which stops with the message.

Subsystem bases (``OutboxError``, ``MllpError``, ``DriverError`` ...) stay, so ``except
OutboxError`` keeps working; each concrete class also names its family. A class is under at most
one family (tests/test_error_families.py).
"""

from __future__ import annotations


class PumpgwError(Exception):
    """Base of every error pumpgw raises on purpose."""


class RetryLater(PumpgwError):
    """The same work can succeed later: keep it and retry after backoff."""


class BadInput(PumpgwError):
    """This input will never succeed: report what and where, then go on with the next."""
