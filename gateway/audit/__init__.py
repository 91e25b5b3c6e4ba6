"""Append-only, hash-chained audit trail of the gateway (docs/biomedical-engineer.md)."""

from gateway.audit.chain import GENESIS, RETENTION_KIND, AuditRow, Finding, verify_rows
from gateway.audit.trail import (
    DEFAULT_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
    AuditError,
    AuditSink,
    AuditTrail,
)

__all__ = [
    "AuditError",
    "AuditRow",
    "AuditSink",
    "AuditTrail",
    "DEFAULT_RETENTION_DAYS",
    "Finding",
    "GENESIS",
    "MIN_RETENTION_DAYS",
    "RETENTION_KIND",
    "verify_rows",
]
