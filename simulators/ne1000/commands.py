"""What each NE-1000 command does to the pump (reference §2.7-§2.9), one method per mnemonic.

:class:`Ne1000Commands` is the command table of :class:`~simulators.ne1000.frontend.Ne1000Line`:
the line decodes a packet, answers a pending alarm instead (§2.12) and calls :meth:`_execute`
with the mnemonic and its argument text; the method returns the reply's data or raises
:class:`Refuse` with the reply's error code (``""`` for ``?``, ``NA``, ``OOR``). A subclass may
answer one command differently (the hostile-values tests do), so the commands stay methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from drivers.ne1000 import codec
from simulators.faults import Faults
from simulators.pump_model import DeliveryState, Program, PumpModelError, SimulatedPump

# mL/h per unit of each rate unit, and mL per volume unit (§2.8).
_RATE_FACTOR = {"MM": Decimal(60), "MH": Decimal(1), "UM": Decimal("0.06"), "UH": Decimal("0.001")}
_VOLUME_FACTOR = {"ML": Decimal(1), "UL": Decimal("0.001")}
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([A-Z]*)")
MAX_SAFE_TIMEOUT_S = 255


class Refuse(Exception):
    """The pump answers with an error code instead of executing the command."""

    def __init__(self, code: str) -> None:
        self.code = code


@dataclass
class Ne1000PumpState:
    """What an NE-1000 keeps beside the infusion model: units, syringe, comms settings."""

    pump: SimulatedPump
    version: codec.Version = field(default_factory=lambda: codec.Version(1000, 3, "928"))
    rate_units: str = "MH"
    volume_units: str = "ML"
    diameter_mm: Decimal = Decimal("26.59")
    safe_timeout_s: int = 0
    watchdog_armed_at: float | None = None
    auto_alarmed: set[str] = field(default_factory=set)
    faults: Faults = field(default_factory=Faults)


class Ne1000Commands:
    """The commands of one NE-1000, acting on a :class:`Ne1000PumpState` (no I/O)."""

    def _execute(self, state: Ne1000PumpState, mnemonic: str, args: str) -> str:
        handler = {
            "": self._cmd_status,
            "VER": self._cmd_version,
            "RAT": self._cmd_rate,
            "VOL": self._cmd_volume,
            "DIS": self._cmd_dispensed,
            "DIR": self._cmd_direction,
            "DIA": self._cmd_diameter,
            "CLD": self._cmd_clear,
            "RUN": self._cmd_run,
            "STP": self._cmd_stop,
            "SAF": self._cmd_safe,
        }.get(mnemonic)
        if handler is None:
            raise Refuse("")
        try:
            return handler(state, args)
        except PumpModelError:
            raise Refuse("NA") from None

    def _cmd_status(self, state: Ne1000PumpState, args: str) -> str:
        if args:
            raise Refuse("")
        return ""

    def _cmd_version(self, state: Ne1000PumpState, args: str) -> str:
        if args:
            raise Refuse("")
        return codec.format_version(state.version)

    def _cmd_rate(self, state: Ne1000PumpState, args: str) -> str:
        pump = state.pump
        if not args:
            rate = (pump.program.rate_ml_h if pump.program else Decimal(0)) / _RATE_FACTOR[state.rate_units]
            return self._format(rate, state.rate_units)
        value, units = _number(args, _RATE_FACTOR, default_units=state.rate_units)
        running = pump.state in (DeliveryState.INFUSING, DeliveryState.KVO)
        if units != state.rate_units and running:
            raise Refuse("NA")  # §2.9: units cannot change while pumping
        if value is None:
            state.rate_units = units
            return ""
        rate_ml_h = value * _RATE_FACTOR[units]
        if rate_ml_h <= 0:
            raise Refuse("OOR")
        state.rate_units = units
        if pump.program is None:
            pump.load_program(Program(rate_ml_h=rate_ml_h))
        else:
            pump.titrate(rate_ml_h=rate_ml_h)
        return ""

    def _cmd_volume(self, state: Ne1000PumpState, args: str) -> str:
        pump = state.pump
        if not args:
            vtbi = (pump.program.vtbi_ml if pump.program else None) or Decimal(0)
            return self._format(vtbi / _VOLUME_FACTOR[state.volume_units], state.volume_units)
        if args in _VOLUME_FACTOR:
            state.volume_units = args
            return ""
        value, units = _number(args, _VOLUME_FACTOR, default_units=state.volume_units)
        if value is None or units != state.volume_units:
            raise Refuse("OOR")
        pump.set_vtbi(None if value == 0 else value * _VOLUME_FACTOR[units])
        return ""

    def _cmd_dispensed(self, state: Ne1000PumpState, args: str) -> str:
        if args:
            raise Refuse("")
        factor = _VOLUME_FACTOR[state.volume_units]
        infused = state.pump.volume_infused_ml / factor
        withdrawn = state.pump.volume_withdrawn_ml / factor
        try:
            return codec.format_dispensed(infused, withdrawn, state.volume_units)
        except ValueError:
            raise Refuse("OOR") from None

    def _cmd_direction(self, state: Ne1000PumpState, args: str) -> str:
        pump = state.pump
        if not args:
            return "WDR" if pump.withdrawing else "INF"
        if args == "INF":
            pump.withdrawing = False
        elif args == "WDR":
            pump.withdrawing = True
        elif args == "REV":
            pump.withdrawing = not pump.withdrawing
        elif args != "STK":
            raise Refuse("OOR")
        return ""

    def _cmd_diameter(self, state: Ne1000PumpState, args: str) -> str:
        if not args:
            return codec.format_float(state.diameter_mm)
        value, units = _number(args, {"": Decimal(1)}, default_units="")
        if value is None or not Decimal("0.1") <= value <= Decimal(80):
            raise Refuse("OOR")
        if state.pump.state is DeliveryState.INFUSING:
            raise Refuse("NA")
        state.diameter_mm = value
        return ""

    def _cmd_clear(self, state: Ne1000PumpState, args: str) -> str:
        if args not in ("INF", "WDR"):
            raise Refuse("OOR")
        state.pump.clear_volume(withdrawn=args == "WDR")
        return ""

    def _cmd_run(self, state: Ne1000PumpState, args: str) -> str:
        pump = state.pump
        if pump.state is DeliveryState.PAUSED:
            pump.resume()
        elif pump.state is not DeliveryState.INFUSING:
            pump.start()
        return ""

    def _cmd_stop(self, state: Ne1000PumpState, args: str) -> str:
        pump = state.pump
        if pump.state in (DeliveryState.INFUSING, DeliveryState.KVO):
            pump.pause()
            if pump.state is DeliveryState.KVO:
                pump.stop()
        else:
            pump.stop()
        return ""

    def _cmd_safe(self, state: Ne1000PumpState, args: str) -> str:
        if not args:
            return str(state.safe_timeout_s)
        if not args.isdigit() or int(args) > MAX_SAFE_TIMEOUT_S:
            raise Refuse("OOR")
        state.safe_timeout_s = int(args)
        state.watchdog_armed_at = None  # armed by the next valid packet (§2.6)
        return ""

    @staticmethod
    def _format(value: Decimal, units: str) -> str:
        try:
            return codec.format_quantity(value, units)
        except ValueError:
            raise Refuse("OOR") from None


def _number(args: str, units_table: dict[str, Decimal], *, default_units: str) -> tuple[Decimal | None, str]:
    """``1200MH`` -> (1200, "MH"); ``MH`` -> (None, "MH"); raises ?OOR on anything else."""
    if args in units_table:
        return None, args
    match = _NUMBER.fullmatch(args)
    if match is None:
        raise Refuse("OOR")
    units = match[2] or default_units
    if units not in units_table:
        raise Refuse("OOR")
    try:
        return Decimal(match[1]), units
    except InvalidOperation:
        raise Refuse("OOR") from None
