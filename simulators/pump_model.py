"""One simulated infusion pump, shared by every protocol front-end (design §4).

Pure logic, no I/O: time comes from an injectable monotonic ``clock`` (real seconds) scaled
by ``acceleration`` into *model seconds*; every read first integrates delivery up to "now",
so a front-end only ever sees a consistent state. Scripted actions (an alarm after a minute)
run at their exact model time inside that integration, so a completion and an alarm are
ordered correctly however rarely the pump is looked at.

Completion: clinical pumps fall back to KVO and raise ``end_of_infusion``; laboratory syringe
pumps (NE-1000) simply stop -- both are flags of the model. The values it is described and
read in (identity, program, alarm kinds, delivery state) are in :mod:`simulators.pump_types`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from simulators.pump_types import (
    ALARM_KINDS,
    ActiveAlarm,
    DeliveryState,
    DeviceIdentity,
    Program,
    PumpModelError,
)

__all__ = [
    "ALARM_KINDS",
    "ActiveAlarm",
    "DeliveryState",
    "DeviceIdentity",
    "Program",
    "PumpModelError",
    "SimulatedPump",
]


@dataclass(order=True)
class _Scheduled:
    at_s: float
    seq: int
    action: Callable[[SimulatedPump], None]
    label: str


def _dec(seconds: float) -> Decimal:
    return Decimal(repr(round(seconds, 9)))


class SimulatedPump:
    """An infusion pump's delivery, alarms and clock, in model time."""

    def __init__(
        self,
        identity: DeviceIdentity,
        *,
        program: Program | None = None,
        running: bool = False,
        acceleration: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        kvo_on_complete: bool = True,
        kvo_rate_ml_h: Decimal = Decimal("1"),
        alarm_on_complete: bool = True,
        clock_drift_ppm: float = 0.0,
    ) -> None:
        if acceleration <= 0:
            raise ValueError(f"acceleration must be > 0, got {acceleration}")
        self.identity = identity
        self.acceleration = acceleration
        self.kvo_on_complete = kvo_on_complete
        self.kvo_rate_ml_h = kvo_rate_ml_h
        self.alarm_on_complete = alarm_on_complete
        self.clock_drift_ppm = clock_drift_ppm
        self._clock = clock
        self._wall_clock = wall_clock
        self._t0 = clock()
        self._t_last = 0.0
        self._clock_offset_s = 0.0
        self._program = program
        self._state = DeliveryState.IDLE if program is None else DeliveryState.STOPPED
        self._infused = Decimal(0)
        self._withdrawn = Decimal(0)
        self._run_infused = Decimal(0)
        self._completed = False
        self.withdrawing = False
        self._alarms: dict[str, ActiveAlarm] = {}
        self._schedule: list[_Scheduled] = []
        self._seq = 0
        self._advancing = False
        if running:
            self.start()

    # -- time ----------------------------------------------------------------------------

    def model_seconds(self) -> float:
        """Model time since creation: real seconds times ``acceleration``."""
        return (self._clock() - self._t0) * self.acceleration

    def device_time(self) -> datetime:
        """The pump's own clock: wall clock plus drift (per real second) and jumps."""
        real_s = self._clock() - self._t0
        skew = self._clock_offset_s + real_s * self.clock_drift_ppm / 1e6
        return self._wall_clock() + timedelta(seconds=skew)

    def jump_clock(self, seconds: float) -> None:
        """Someone set the pump's clock (or it jumped): shift it by ``seconds``."""
        self._clock_offset_s += seconds

    def schedule(self, at_s: float, action: Callable[[SimulatedPump], None], label: str = "") -> None:
        """Run ``action(pump)`` when model time reaches ``at_s`` (seconds since creation)."""
        self._seq += 1
        self._schedule.append(_Scheduled(at_s, self._seq, action, label))
        self._schedule.sort()

    def schedule_alarm(self, at_s: float, kind: str) -> None:
        self.schedule(at_s, lambda pump: pump.set_alarm(kind), f"alarm {kind}")

    def _advance(self) -> None:
        if self._advancing:
            return  # a scheduled action calling back in acts at its own time, not "now"
        self._advancing = True
        try:
            now = self.model_seconds()
            while self._schedule and self._schedule[0].at_s <= now:
                event = self._schedule.pop(0)
                self._integrate_to(max(event.at_s, self._t_last))
                event.action(self)
            self._integrate_to(now)
        finally:
            self._advancing = False

    def _integrate_to(self, t: float) -> None:
        dt = t - self._t_last
        if dt <= 0:
            return
        self._t_last = t
        if self._state is DeliveryState.KVO:
            self._deliver(self.kvo_rate_ml_h * _dec(dt) / 3600)
            return
        if self._state is not DeliveryState.INFUSING or self._program is None:
            return
        rate = self._program.rate_ml_h
        amount = rate * _dec(dt) / 3600
        vtbi = self._program.vtbi_ml
        if vtbi is None or self._run_infused + amount < vtbi:
            self._deliver(amount)
            return
        remaining = vtbi - self._run_infused
        self._deliver(remaining)
        done_after = float(remaining * 3600 / rate) if rate else 0.0
        self._complete(at_s=t - dt + done_after)
        if self._state is DeliveryState.KVO:
            self._deliver(self.kvo_rate_ml_h * _dec(max(0.0, dt - done_after)) / 3600)

    def _deliver(self, amount: Decimal) -> None:
        if self.withdrawing:
            self._withdrawn += amount
        else:
            self._infused += amount
        self._run_infused += amount

    def _complete(self, at_s: float) -> None:
        self._completed = True
        self._state = DeliveryState.KVO if self.kvo_on_complete else DeliveryState.STOPPED
        if self.alarm_on_complete:
            self._alarms.setdefault("end_of_infusion", ActiveAlarm("end_of_infusion", at_s))

    # -- what a front-end reads ----------------------------------------------------------

    @property
    def state(self) -> DeliveryState:
        self._advance()
        return self._state

    @property
    def program(self) -> Program | None:
        self._advance()
        return self._program

    @property
    def completed(self) -> bool:
        """The current run reached its VTBI."""
        self._advance()
        return self._completed

    @property
    def current_rate_ml_h(self) -> Decimal:
        """What is flowing now: the program rate, the KVO rate, or zero."""
        state = self.state
        if state is DeliveryState.INFUSING and self._program is not None:
            return self._program.rate_ml_h
        return self.kvo_rate_ml_h if state is DeliveryState.KVO else Decimal(0)

    @property
    def volume_infused_ml(self) -> Decimal:
        self._advance()
        return self._infused

    @property
    def volume_withdrawn_ml(self) -> Decimal:
        self._advance()
        return self._withdrawn

    @property
    def remaining_ml(self) -> Decimal | None:
        self._advance()
        if self._program is None or self._program.vtbi_ml is None:
            return None
        return max(Decimal(0), self._program.vtbi_ml - self._run_infused)

    @property
    def alarms(self) -> tuple[ActiveAlarm, ...]:
        """Active alarms, oldest first."""
        self._advance()
        return tuple(sorted(self._alarms.values(), key=lambda a: a.since_s))

    # -- what a front-end (or a test script) changes ---------------------------------------

    def load_program(self, program: Program) -> None:
        """Replace the program; the pump stops and a new run begins."""
        self._advance()
        self._program = program
        self._state = DeliveryState.STOPPED
        self._run_infused = Decimal(0)
        self._completed = False

    def start(self) -> None:
        self._advance()
        if self._program is None:
            raise PumpModelError("no program loaded")
        if self._program.rate_ml_h <= 0:
            raise PumpModelError(f"rate must be > 0 to start, got {self._program.rate_ml_h}")
        blocking = [a.kind for a in self._alarms.values() if ALARM_KINDS.get(a.kind, True) and not a.acknowledged]
        if blocking:
            raise PumpModelError(f"alarm active: {', '.join(blocking)}")
        if self._completed:
            self._run_infused = Decimal(0)
            self._completed = False
            self._alarms.pop("end_of_infusion", None)
        self._state = DeliveryState.INFUSING

    def stop(self) -> None:
        self._advance()
        if self._program is not None:
            self._state = DeliveryState.STOPPED

    def pause(self) -> None:
        self._advance()
        if self._state is DeliveryState.INFUSING:
            self._state = DeliveryState.PAUSED

    def resume(self) -> None:
        self._advance()
        if self._state is not DeliveryState.PAUSED:
            raise PumpModelError(f"cannot resume from {self._state}")
        self.start()

    def titrate(self, *, rate_ml_h: Decimal | None = None, dose_rate: Decimal | None = None) -> None:
        """Change the rate of the current program (running or not), by rate or by dose."""
        self._advance()
        if self._program is None:
            raise PumpModelError("no program to titrate")
        program = self._program
        if dose_rate is not None:
            if not program.dose_rate:
                raise PumpModelError("program has no dose rate to titrate by")
            rate_ml_h = program.rate_ml_h * dose_rate / program.dose_rate
        if rate_ml_h is None or rate_ml_h < 0:
            raise PumpModelError(f"rate must be >= 0, got {rate_ml_h}")
        new_dose = None
        if program.dose_rate is not None and program.rate_ml_h:
            new_dose = dose_rate if dose_rate is not None else program.dose_rate * rate_ml_h / program.rate_ml_h
        self._program = replace(program, rate_ml_h=rate_ml_h, dose_rate=new_dose)

    def set_vtbi(self, vtbi_ml: Decimal | None) -> None:
        self._advance()
        if self._program is None:
            raise PumpModelError("no program")
        self._program = replace(self._program, vtbi_ml=vtbi_ml)

    def clear_volume(self, *, withdrawn: bool = False) -> None:
        self._advance()
        if withdrawn:
            self._withdrawn = Decimal(0)
        else:
            self._infused = Decimal(0)

    def set_alarm(self, kind: str) -> None:
        """Raise an alarm; one that stops delivery stops the pump (KVO included)."""
        self._advance()
        if kind not in ALARM_KINDS:
            raise PumpModelError(f"unknown alarm kind {kind!r}; expected one of {', '.join(ALARM_KINDS)}")
        self._alarms.setdefault(kind, ActiveAlarm(kind, self._t_last))
        if ALARM_KINDS[kind] and self._state in (DeliveryState.INFUSING, DeliveryState.KVO, DeliveryState.PAUSED):
            self._state = DeliveryState.STOPPED

    def acknowledge_alarm(self, kind: str) -> None:
        self._advance()
        alarm = self._alarms.get(kind)
        if alarm is not None:
            self._alarms[kind] = replace(alarm, acknowledged=True)

    def clear_alarm(self, kind: str) -> None:
        self._advance()
        self._alarms.pop(kind, None)
