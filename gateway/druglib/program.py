"""The program under check: what a pump channel reports, plus what the gateway knows around it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from drivers.model import ChannelSnapshot, ChannelState, Quantity


@dataclass(frozen=True, slots=True)
class ProgramUnderCheck:
    """What the checker needs from a pump channel, plus what the gateway knows around it."""

    drug: str | None
    care_area: str | None
    pump_library_version: str | None = None
    concentration: Quantity | None = None
    dose_rate: Quantity | None = None
    rate: Quantity | None = None
    vtbi: Quantity | None = None
    patient_weight: Quantity | None = None
    expected_weight: Quantity | None = None  # e.g. from the EHR; enables the lb/kg check
    bsa: Quantity | None = None  # m2, for per-m2 entries
    therapy: str | None = None
    rate_step_ml_h: Decimal | None = None  # the pump's rate resolution when the driver knows it


def program_from_channel(
    channel: ChannelSnapshot,
    *,
    care_area: str | None,
    pump_library_version: str | None,
    expected_weight: Quantity | None = None,
) -> ProgramUnderCheck | None:
    """The program on a channel, or ``None`` when nothing is programmed.

    The care area the pump itself reports wins over the configured one: it is the profile whose
    limits the pump applied.
    """
    if channel.state is ChannelState.IDLE or (channel.rate is None and channel.dose_rate is None and not channel.drug):
        return None
    return ProgramUnderCheck(
        drug=channel.drug or None,
        care_area=channel.care_area or care_area or None,
        pump_library_version=pump_library_version,
        concentration=channel.concentration,
        dose_rate=channel.dose_rate,
        rate=channel.rate,
        vtbi=channel.vtbi,
        patient_weight=channel.patient_weight,
        expected_weight=expected_weight,
    )


MAX_MAGNITUDE = Decimal("1e12")
"""Beyond this no pump quantity is real; such a value would only cost memory and time."""


def _usable(q: Quantity | None) -> bool:
    if q is None:
        return True
    exponent = q.value.as_tuple().exponent  # an int for every finite value
    return q.value.is_finite() and abs(q.value) <= MAX_MAGNITUDE and isinstance(exponent, int) and exponent >= -12


def finite_program(program: ProgramUnderCheck) -> tuple[ProgramUnderCheck, list[str]]:
    """``program`` with every quantity that is not a usable finite number removed (named)."""
    fields = ("concentration", "dose_rate", "rate", "vtbi", "patient_weight", "expected_weight", "bsa")
    dropped = [name for name in fields if not _usable(getattr(program, name))]
    step = program.rate_step_ml_h
    if step is not None and not (step.is_finite() and 0 < step <= MAX_MAGNITUDE):
        dropped.append("rate_step_ml_h")
    if not dropped:
        return program, []
    return replace(program, **{name: None for name in dropped}), dropped
