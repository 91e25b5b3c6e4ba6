"""Errors are grouped by what the caller does next (common/errors.py, issue 19 item 5).

Every exception class ``gateway``, ``drivers`` and ``common`` define is a ``PumpgwError`` and
sits under exactly one family (``RetryLater`` or ``BadInput``) or is listed in :data:`STOP`
with the reason a person must act. Private classes (a leading underscore) are control flow
inside one module and are not raised across it.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3

import pytest

from common.errors import BadInput, PumpgwError, RetryLater

PACKAGES = ("common", "drivers", "gateway")

STOP = {
    # Subsystem bases: each concrete subclass names its own family.
    "common.errors.PumpgwError": "the root",
    "drivers.errors.DriverError": "subsystem base",
    "gateway.hl7.errors.Hl7Error": "subsystem base",
    "gateway.mqtt.errors.MqttError": "subsystem base",
    "gateway.outbox.errors.OutboxError": "subsystem base",
    # A person must act before the daemon can go on.
    "drivers.errors.ForbiddenCommand": "a programming error: a command outside the read-only allowlist",
    "gateway.outbox.errors.OutboxCorrupt": "move the file aside",
    "gateway.outbox.errors.OutboxAccessError": "fix the file's permissions",
    "gateway.outbox.errors.OutboxSchemaError": "the file is from a newer pumpgw or no outbox",
    "gateway.outbox.errors.OutboxClosed": "shutting down: the caller ends",
    "gateway.outbox.lock.OutboxLocked": "another daemon holds the outbox",
    "gateway.outbox.lock.OutboxPathError": "the outbox folder is missing or not writable",
    "gateway.hl7.errors.ControlIdStateError": "the MSH-10 state file is unusable; ids must never repeat",
    "gateway.commands.readonly.DatabaseUnavailable": "a CLI command cannot open the gateway database",
    # Mixed today (missing file, read-only, write failed, retention below the minimum): its
    # raise sites in gateway/audit/trail.py would need one class each to split it.
    "gateway.audit.trail.AuditError": "mixed; callers log it and carry on",
}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def error_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        modules = [root] + [
            importlib.import_module(info.name)
            for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
            if not info.name.endswith("__main__")
        ]
        for module in modules:
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not value.__name__.startswith("_")
                ):
                    found[_name(value)] = value
    return sorted(found.values(), key=_name)


CLASSES = error_classes()


def test_the_scan_finds_the_errors_of_every_layer():
    names = {_name(c) for c in CLASSES}
    for expected in (
        "gateway.outbox.errors.OutboxFull",
        "gateway.mllp.errors.DeliveryError",
        "gateway.hl7.errors.Hl7EncodeError",
        "drivers.errors.FrameError",
        "gateway.errors.ConfigError",
    ):
        assert expected in names


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_every_error_is_a_pumpgw_error_in_exactly_one_family_or_a_documented_stop(cls):
    assert issubclass(cls, PumpgwError), f"{_name(cls)} is not a PumpgwError"
    families = [f.__name__ for f in (RetryLater, BadInput) if issubclass(cls, f)]
    if _name(cls) in STOP:
        assert families == [], f"{_name(cls)} is listed as 'stop' but is {families}"
    else:
        assert len(families) == 1, f"{_name(cls)}: families {families}; add it to one, or to STOP with a reason"


def test_every_stop_entry_names_a_class_that_exists():
    assert set(STOP) <= {_name(c) for c in CLASSES}


def test_split_classes_keep_their_subsystem_base():
    from common.mllp.errors import MllpError
    from gateway.mllp.errors import DeliveryError
    from gateway.outbox import OutboxBusy, OutboxCorrupt, OutboxError, OutboxFull

    assert issubclass(OutboxFull, OutboxError) and issubclass(OutboxFull, RetryLater)
    assert issubclass(OutboxBusy, OutboxError) and issubclass(OutboxBusy, RetryLater)
    assert issubclass(OutboxCorrupt, OutboxError) and not issubclass(OutboxCorrupt, RetryLater | BadInput)
    assert issubclass(MllpError, BadInput) and issubclass(DeliveryError, RetryLater)


async def test_a_locked_outbox_file_is_reported_as_retry_later_not_as_a_raw_sqlite_error(tmp_path):
    from gateway.outbox import NewMessage, Outbox, OutboxBusy

    outbox = Outbox.open(tmp_path / "o.db")
    other = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # an operator's write transaction holds the file
    try:
        with pytest.raises(RetryLater) as caught:
            await outbox.commit([NewMessage("ehr", "pcd10", "C1", b"MSH|", 60.0)])
        assert isinstance(caught.value, OutboxBusy)
        assert "locked" in str(caught.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(await outbox.commit([NewMessage("ehr", "pcd10", "C1", b"MSH|", 60.0)])) == 1  # the same unit, later
    outbox.close()
