"""Log output: JSON lines for journald, and no patient identifier in clear text at info level."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gateway.log import configure_logging, get_logger

PID_HL7 = (
    "MSH|^~\\&|PUMPGW^001BC50C00000001^EUI-64||EHR||20261123101500+0000||ORU^R01^ORU_R01|MSG42|P|2.6\r"
    "PID|||MRN-77731^^^HOSP^MR||Doe^Jane^^^^^L\rOBX|1|NM|x\r"
)


@pytest.fixture
def captured():
    stream = io.StringIO()
    yield stream
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_patient_identifiers_are_pseudonymised_at_info_level(captured):
    configure_logging(level="debug", fmt="json", stream=captured)
    log = get_logger("pumpgw.test", pump="bed07")
    log.info("associated", patient_id="MRN-77731", patient_name="Doe^Jane")
    log.warning("message refused", raw=PID_HL7)
    log.debug("debug without wire trace", mrn="MRN-77731", raw=PID_HL7)
    text = captured.getvalue()
    assert "MRN-77731" not in text and "Jane" not in text
    first, second, third = lines(captured)
    assert first["patient_id"].startswith("<redacted:") and first["pump"] == "bed07"
    assert second["raw"] == "<HL7 ORU^R01^ORU_R01 id=MSG42 with PID redacted>"
    assert third["mrn"] == first["patient_id"]  # same value, same pseudonym, even at debug
    assert "with PID redacted" in third["raw"]


def test_same_patient_gets_same_pseudonym_so_lines_can_be_correlated(captured):
    configure_logging(level="info", fmt="json", stream=captured)
    log = get_logger("pumpgw.test")
    log.info("a", patient_id="MRN-1")
    log.info("b", patient_id="MRN-1")
    log.info("c", patient_id="MRN-2")
    a, b, c = lines(captured)
    assert a["patient_id"] == b["patient_id"] != c["patient_id"]


def test_raw_capture_shows_patient_data_only_at_debug_with_wire_trace(captured):
    configure_logging(level="debug", fmt="json", wire_trace=True, stream=captured)
    log = get_logger("pumpgw.test")
    log.debug("wire", raw=PID_HL7)
    log.info("still redacted at info", patient_id="MRN-77731")
    debug_line, info_line = lines(captured)
    assert "MRN-77731" in debug_line["raw"]
    assert "MRN-77731" not in json.dumps(info_line)


def test_stdlib_loggers_are_rendered_as_json_lines_with_level_and_logger(captured):
    configure_logging(level="info", fmt="json", stream=captured)
    logging.getLogger("pumpgw.wire.bed01").warning("plain stdlib line")
    (line,) = lines(captured)
    assert line["level"] == "warning" and line["logger"] == "pumpgw.wire.bed01"
    assert line["event"] == "plain stdlib line" and "timestamp" in line


def test_a_logger_made_before_configure_logging_writes_through_the_configured_chain(captured):
    """A module-level logger is made at import, before the daemon configures logging; its lines
    must still go through the PHI filter and the JSON renderer, not to structlog's default."""
    import structlog

    structlog.reset_defaults()  # as at import time: nothing configured yet
    log = get_logger("pumpgw.test", lane="doc")
    configure_logging(level="info", fmt="json", stream=captured)
    log.warning("made early", patient_id="MRN-77731")
    (line,) = lines(captured)
    assert line["event"] == "made early" and line["lane"] == "doc" and line["logger"] == "pumpgw.test"
    assert line["patient_id"].startswith("<redacted:")
