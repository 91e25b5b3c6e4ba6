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
  tiny state file holds a high-water mark leased 60 s ahead (one fsync'd write a minute);
  a restarted generator starts above it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gateway.hl7.errors import ControlIdStateError

_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SEQ_PER_MS = 36 * 36
_LEASE_MS = 60_000
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
    ) -> None:
        if len(eui64) != 16 or any(c not in "0123456789ABCDEFabcdef" for c in eui64):
            raise ValueError(f"EUI-64 must be 16 hex digits, got {eui64!r}")
        self._prefix = eui64[-8:].upper()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
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
            if self._state_path is not None and self._last_ms >= self._leased_until:
                self._write_state(self._last_ms + _LEASE_MS)
            high, low = divmod(self._last_ms, _SEQ_PER_MS)
            if high != self._high:
                self._high, self._high_digits = high, self._prefix + _base36(high, 7)
            return self._high_digits + _PAIRS[low] + _PAIRS[self._seq]

    def _read_state(self) -> int:
        assert self._state_path is not None
        try:
            text = self._state_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return -1
        except OSError as exc:
            raise ControlIdStateError(str(self._state_path), str(exc)) from exc
        if not text.isdigit():
            raise ControlIdStateError(str(self._state_path), f"expected a decimal ms count, got {text[:40]!r}")
        self._leased_until = int(text)
        return int(text)

    def _write_state(self, leased_until: int) -> None:
        assert self._state_path is not None
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(f"{leased_until}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._state_path)
        except OSError as exc:
            raise ControlIdStateError(str(self._state_path), str(exc)) from exc
        self._leased_until = leased_until


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
