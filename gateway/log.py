"""Logging: structlog, JSON lines for journald, readable lines on a terminal.

Patient safety (design.md §2 invariant 7): patient identifiers never reach a log line in
clear text at info level or above. Two guards, both in the processor chain so no call site
can forget them:

* keys that carry patient data (``patient_id``, ``patient_name``, ``mrn``, ...) are replaced by
  a short keyed hash at every level except debug with ``wire_trace`` enabled -- the hash still
  lets an engineer correlate lines about the same patient;
* values that look like HL7 carrying a PID segment are reduced to their message type and
  control id unless raw capture is enabled.

Raw wire capture (``logging.wire_trace``) is opt-in, debug-only, and documented as PHI.

One style at the call site:

* **the daemon (gateway/)** logs through :func:`get_logger` (structlog), a constant event text
  and key-value fields: ``log.error("commit failed", pump=pump_id, error=str(exc),
  error_type=type(exc).__name__)``. Never %-interpolation or an f-string with values in the
  event text: the text stays greppable and is what the rate limiter groups repeats by
  (gateway/lograte.py), the JSON line carries each value as a field, and the PHI filter above
  sees each value under its own key.
* **packages that must not import the daemon** (``drivers/``, ``simulators/``, ``fleet/``:
  design.md §4, §7) use stdlib ``logging.getLogger("pumpgw.<area>")`` with a %-style message
  (arguments, never pre-formatted). Inside the daemon their records run through the same
  chain as structlog's (PHI filter, rate limit, JSON); the simulators and the fleet service
  print them as text lines of their own.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from typing import Any, TextIO

import structlog

from gateway.lograte import RateLimitFilter

PHI_KEYS = frozenset(
    {"patient_id", "patient_name", "patient", "mrn", "pid", "date_of_birth", "birth_date", "visit_number"}
)
# Also the escaped forms: a repr() of bytes shows a segment end as the two characters "\r".
_PID_SEGMENT = re.compile(r"(?:^|\r|\n|\\r|\\n|\\x0b)PID\|")
_MSH = re.compile(r"MSH\|[^|]*\|(?:[^|]*\|){6}([^|]*)\|([^|]*)\|")
# below DEBUG: raw bytes and peer text per direction (loggers pumpgw.wire.<name>.rx/tx);
# one level, named once, in the transport layer
from drivers.transport.link import TRACE as WIRE  # noqa: E402


def _pseudonym(value: object) -> str:
    digest = hashlib.blake2s(str(value).encode(), digest_size=4, key=b"pumpgw-log").hexdigest()
    return f"<redacted:{digest}>"


def _summarise_hl7(text: str) -> str:
    match = _MSH.search(text)
    if match:
        return f"<HL7 {match.group(1)} id={match.group(2)} with PID redacted>"
    return "<HL7 with PID redacted>"


class PhiFilter:
    """structlog processor removing patient identifiers unless raw capture is enabled."""

    def __init__(self, *, allow_at_debug: bool) -> None:
        self.allow_at_debug = allow_at_debug

    def __call__(self, _logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if self.allow_at_debug and event.get("level", method) in ("debug", "wire"):
            return event
        for key, value in list(event.items()):
            if key in PHI_KEYS and value not in (None, ""):
                event[key] = _pseudonym(value)
            elif isinstance(value, (str, bytes)):
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                if _PID_SEGMENT.search(text):
                    event[key] = _summarise_hl7(text)
        return event


def _name_wire_level(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Level 5 is "wire" in our logs whatever name a library registered for it (uvicorn calls
    it TRACE), so readers and the PHI filter see one name."""
    record = event.get("_record")
    if record is not None and record.levelno == WIRE:
        event["level"] = "wire"
    return event


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    wire_trace: bool = False,
    stream: TextIO | None = None,
    rate_limit_window_s: float = 60.0,
) -> None:
    """Configure structlog and the stdlib root logger once, from the ``[logging]`` section."""
    stream = stream if stream is not None else sys.stderr
    logging.addLevelName(WIRE, "WIRE")  # again: a library (uvicorn) may have named level 5 "TRACE" since
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    numeric = WIRE if wire_trace and level == "debug" else getattr(logging, level.upper())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _name_wire_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),  # stdlib loggers' extra={...} become fields, not text
        PhiFilter(allow_at_debug=wire_trace),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    limiter = RateLimitFilter(rate_limit_window_s)
    limiter.bind(handler.handle)
    handler.addFilter(limiter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


def get_logger(name: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """A logger that resolves the configuration at each call, not when it is made: a
    module-level ``log = get_logger(...)`` is created at import, usually before
    :func:`configure_logging` has run, and must still write through the chain above."""
    return structlog.get_logger(name, **context)
