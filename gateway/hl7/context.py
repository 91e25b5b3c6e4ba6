"""What an encoder needs besides the pump data: who we are, who receives, MSH-10.

MSH-10 scheme (documented in docs/hl7.md): ``<8 hex: EUI-64 suffix><9 base-36: UTC ms>
<2 base-36: sequence>`` — 19 characters, so it also fits receivers still holding the
v2.5 20-character limit. Uniqueness:

* across gateways: MSH-3 carries the full EUI-64 and the TF requires uniqueness of the
  pair MSH-3 + MSH-10 (TF2-R10 B.1 MSH-10); the EUI-64 suffix additionally makes bare
  MSH-10 collisions between gateways negligible;
* within a process: a logical clock ``max(now_ms, last_ms)`` with a sequence of 1,296
  per millisecond; when the sequence runs out, or the wall clock steps backwards, ids
  borrow the next millisecond, so ids never repeat while the process runs;
* across restarts: the wall clock is enough unless it stepped back past a previous run
  ("Sending system must not repeat sequence after restart", IHEWIKI-MSH10). An optional
  tiny state file holds a high-water mark leased 60 s ahead (one fsync'd write a minute),
  plus the wall clock, the boot clock (``CLOCK_BOOTTIME``) and the boot id at the time it
  was written. Within the same boot a restarted generator knows how much real time has
  passed, so it starts at ``max(now, wall-at-write + elapsed + 0.1 s)`` -- above every id
  of the previous run, yet not ahead of the clock (starting at the lease made ids run up to
  60 s ahead after each restart: 7,000 s after 220 quick restarts). The state is rewritten
  whenever ids would run ahead of that bound (a clock stepped forward, > 1,296 ids in a
  ms). After a reboot, or with a state file of the older one-number format, it starts above
  the lease (at most 60 s ahead, once).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gateway.fileperms import open_private
from gateway.hl7.errors import ControlIdStateError

_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SEQ_PER_MS = 36 * 36
_LEASE_MS = 60_000
_TOLERANCE_MS = 100  # wall clock vs boot clock disagreement accepted before re-writing the state
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()[:36] or "unknown"
    except OSError:
        return "unknown"


def _boot_ms() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // 1_000_000


_PAIRS = [a + b for a in _B36 for b in _B36]  # base-36 digit pairs 00..ZZ


def _base36(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        digits.append(_B36[rem])
    if value:
        raise OverflowError("value does not fit")
    return "".join(reversed(digits))


class ControlIdGenerator:
    """Issues MSH-10 values, unique across restarts and gateways (module docstring)."""

    def __init__(
        self,
        eui64: str,
        *,
        state_path: str | Path | None = None,
        clock_ms: Callable[[], int] | None = None,
        boot_ms: Callable[[], int] | None = None,
        boot_id: str | None = None,
    ) -> None:
        if len(eui64) != 16 or any(c not in "0123456789ABCDEFabcdef" for c in eui64):
            raise ValueError(f"EUI-64 must be 16 hex digits, got {eui64!r}")
        self._prefix = eui64[-8:].upper()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        # A test clock without a boot clock is taken as never stepping (the two agree).
        self._boot_ms = boot_ms or (clock_ms if clock_ms is not None else _boot_ms)
        self._boot_id = boot_id if boot_id is not None else _boot_id()
        self._written = (0, 0, -1)  # (wall ms, boot ms, high-water ms) of the last state write
        self._lock = threading.Lock()
        self._last_ms = -1
        self._seq = 0
        self._state_path = Path(state_path) if state_path is not None else None
        self._leased_until = -1
        self._high = -1  # ms // 1296, changes every 1.3 s: its 7 digits are cached
        self._high_digits = ""
        if self._state_path is not None:
            self._last_ms = self._read_state()
            self._seq = _SEQ_PER_MS - 1  # the first id takes the next millisecond

    def next_id(self) -> str:
        with self._lock:
            now = self._clock_ms()
            if now > self._last_ms:
                self._last_ms, self._seq = now, 0
            else:  # same millisecond, or the clock stepped back: keep the logical clock
                self._seq += 1
                if self._seq >= _SEQ_PER_MS:
                    self._last_ms, self._seq = self._last_ms + 1, 0
            if self._state_path is not None and (self._last_ms >= self._leased_until or self._ahead()):
                self._write_state(self._last_ms + _LEASE_MS)
            high, low = divmod(self._last_ms, _SEQ_PER_MS)
            if high != self._high:
                self._high, self._high_digits = high, self._prefix + _base36(high, 7)
            return self._high_digits + _PAIRS[low] + _PAIRS[self._seq]

    def _ahead(self) -> bool:
        """Would this id be above what the state file's bound covers (clock jumped forward)?"""
        wall, boot, high = self._written
        return self._last_ms > high and self._last_ms > wall + (self._boot_ms() - boot) + _TOLERANCE_MS

    def _read_state(self) -> int:
        """The logical ms a restarted generator starts from (module docstring)."""
        assert self._state_path is not None
        try:
            text = self._state_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return -1
        except OSError as exc:
            raise ControlIdStateError(str(self._state_path), str(exc)) from exc
        parts = text.split()
        if not parts or not all(p.isdigit() for p in parts[:4]) or len(parts) not in (1, 5):
            raise ControlIdStateError(str(self._state_path), f"expected a decimal ms count, got {text[:40]!r}")
        self._leased_until = leased = int(parts[0])
        if len(parts) == 1:  # the older format: only the lease is known
            return leased
        wall, boot, high, boot_id = int(parts[1]), int(parts[2]), int(parts[3]), parts[4]
        elapsed = self._boot_ms() - boot
        if boot_id != self._boot_id or elapsed < 0:  # another boot: real time elapsed is unknown
            return leased
        return min(leased, max(high, wall + elapsed + _TOLERANCE_MS))

    def _write_state(self, leased_until: int) -> None:
        assert self._state_path is not None
        written = (self._clock_ms(), self._boot_ms(), self._last_ms)
        line = f"{leased_until:016d} {written[0]:016d} {written[1]:016d} {written[2]:016d} {self._boot_id:<36}\n"
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        try:
            try:
                with os.fdopen(open_private(tmp), "w", encoding="ascii") as fh:  # 0640 whatever the umask
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self._state_path)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._state_path.exists():
                    raise
                # A full disk (the outbox keeps a reserve; this file has none): overwrite the
                # fixed-width line in place -- no new block is needed for that.
                with contextlib.suppress(OSError):
                    tmp.unlink()
                with open(self._state_path, "r+", encoding="ascii") as fh:
                    fh.write(line)
                    fh.truncate()
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            raise ControlIdStateError(str(self._state_path), str(exc)) from exc
        self._leased_until = leased_until
        self._written = written


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """A patient associated with a pump (later: from ADT or a BCMA association).

    Without one the encoders use the TF's unknown-patient convention (TF2-R10 B.5):
    PID-3 empty, PID-5 name type ``U`` with empty components, PID-31 ``Y``.
    """

    identifier: str
    assigning_authority: str = ""
    identifier_type: str = "MR"
    family_name: str = ""
    given_name: str = ""
    patient_class: str = "I"  # PV1-2


@dataclass(frozen=True, slots=True)
class PumpInfo:
    """Per-pump facts from the configuration."""

    pump_id: str
    location: str = ""  # PV1-3 bed label
    care_area: str = ""  # drug-library care area when the pump does not report one
    eui64: str | None = None  # the pump's own EUI-64, when it has one
    pump_type: Literal["generic", "lvp"] = "generic"  # LVP selects the App. M 70049/70050 codes
    legacy_universal_id: str = ""  # e.g. "bbraun.com"; used when device_id_style == "legacy"
    legacy_universal_id_type: str = "DNS"
    asset_tag: str | None = None  # the hospital's inventory number (MDC_ATTR_ID_SOFT)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class EncodeContext:
    """Everything the encoders take from configuration and the outside world."""

    site: str
    ward: str
    gateway_id: str
    eui64: str
    control_ids: ControlIdGenerator
    country: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    processing_id: Literal["P", "D"] = "P"
    pumps: Mapping[str, PumpInfo] = field(default_factory=dict)
    patients: Mapping[str, PatientIdentity] = field(default_factory=dict)  # by pump id
    # §13: events/terms without a published MDC code: "pending" sends 0^REFID^MDC,
    # "omit" leaves the row out and refuses the PCD-10 event (UnpublishedCodeError).
    unpublished_codes: Literal["pending", "omit"] = "pending"
    device_id_style: Literal["eui64", "legacy"] = "eui64"
    pcd04_msh16: Literal["NE", "AL", "ER", "SU"] = "NE"  # NE: pumpgw does not consume PCD-05
    clock: Callable[[], datetime] = _utc_now  # MSH-7 and PCD-04 OBR-7 (creation time)

    def pump(self, pump_id: str) -> PumpInfo:
        return self.pumps.get(pump_id) or PumpInfo(pump_id=pump_id)

    @property
    def sending_application(self) -> str:
        """MSH-3 namespace id (HD-1); HD-2/3 carry the EUI-64 (TF2-R10 B.1 MSH-3)."""
        return f"PUMPGW_{self.gateway_id}"
