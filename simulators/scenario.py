"""Scenario files: many simulated pumps, their programs, faults and a timeline (TOML).

The format is documented for testers in ``docs/tester.md``; examples live in
``config/scenarios/``. This module only reads and validates a file into typed models and
expands ``[[groups]]`` into pumps; :mod:`simulators.scenario_runner` runs them. Unknown
keys are errors (a misspelt fault silently ignored would make a test prove nothing), and
every error names the file and the key.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.describe import describe
from common.diagnostics import Problem, line_for
from common.textlimits import FileTooLarge, path_problem, read_bounded, toml_too_deep
from common.tomlpos import key_lines
from drivers.registry import DRIVERS, SPACECOM, ProtocolName, RackPosition, driver_spec
from simulators.pump_model import ALARM_KINDS

Protocol = ProtocolName  # the driver registry's protocols: the simulators serve each of them
ACTIONS = (
    "alarm",
    "clear_alarm",
    "start",
    "stop",
    "pause",
    "resume",
    "titrate",
    "set_vtbi",
    "fault",
    "clear_faults",
    "disconnect",
    "reconnect",
    "swap_identity",
    "firmware",
    "clock_jump",
    "remove",
    "insert",
    "library",
    "identity_unreadable",
    "identity_readable",
)
# Identity facts each protocol front-end reports (pump-protocols.md: NE-1000 has no serial
# command; BCC's GNNEW/GNMODEL give model and software id; Alaris answers INST_SERIALNO and
# COMMS_PROTOCOL). No supported protocol reports the pump's drug-library version; the
# "library" step changes the pump model, which an inbound PCD source can carry.
IDENTITY_FIELDS_CARRIED = {
    "ne1000": frozenset({"model", "firmware"}),
    "alaris": frozenset({"serial", "firmware"}),
    "bbraun-bcc": frozenset({"model", "firmware"}),
}
# Steps that need a protocol to carry a field: action -> field.
_NEEDS_FIELD = {"library": "library_version", "identity_unreadable": "serial", "identity_readable": "serial"}
RACK_POSITIONS = SPACECOM.count


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message names the file and the key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FaultSpec(_Strict):
    """Reply faults of one pump (see :class:`simulators.faults.Faults`)."""

    corrupt_checksum: bool = False
    garbage_before_reply: str = Field(
        default="", description="Sent before each reply (latin-1; \\xNN escapes allowed)."
    )
    silent: bool = False
    reply_delay_s: float = Field(default=0.0, ge=0)


class Action(_Strict):
    """One timeline entry: at ``t_s`` real seconds after start, do ``action``."""

    t_s: float = Field(ge=0)
    action: Literal[ACTIONS]  # type: ignore[valid-type]
    kind: str | None = None  # alarm / clear_alarm
    rate_ml_h: float | None = Field(default=None, ge=0)  # titrate
    vtbi_ml: float | None = Field(default=None, ge=0)  # set_vtbi (0 = none)
    duration_s: float | None = Field(default=None, gt=0)  # disconnect: reconnect after
    serial: str | None = None  # swap_identity
    firmware: str | None = None  # firmware / swap_identity
    library_version: str | None = None  # library
    seconds: float | None = None  # clock_jump
    corrupt_checksum: bool | None = None  # fault
    garbage_before_reply: str | None = None
    silent: bool | None = None
    reply_delay_s: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _needs(self) -> Action:
        required = {
            "alarm": "kind",
            "clear_alarm": "kind",
            "titrate": "rate_ml_h",
            "set_vtbi": "vtbi_ml",
            "swap_identity": "serial",
            "firmware": "firmware",
            "clock_jump": "seconds",
            "library": "library_version",
        }
        key = required.get(self.action)
        if key and getattr(self, key) is None:
            raise ValueError(f"action {self.action!r} needs {key!r}")
        if self.kind is not None and self.kind not in ALARM_KINDS:
            raise ValueError(f"unknown alarm kind {self.kind!r}; expected one of {', '.join(ALARM_KINDS)}")
        return self


class PumpSpec(_Strict):
    """One simulated pump; also the template of a group (without ``id``)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    protocol: Protocol
    serial: str | None = None
    model: str | None = None
    firmware: str | None = None
    rate_ml_h: float = Field(default=0.0, ge=0)
    vtbi_ml: float | None = Field(default=None, gt=0)
    drug: str | None = None
    concentration: float | None = Field(default=None, gt=0)
    concentration_unit: str | None = None
    running: bool = True
    acceleration: float | None = Field(default=None, gt=0)
    clock_drift_ppm: float = 0.0
    rack: str | None = None
    pillar: int | None = Field(default=None, ge=SPACECOM.pillars.start, le=SPACECOM.pillars.stop - 1)
    slot: int | None = Field(default=None, ge=SPACECOM.slots.start, le=SPACECOM.slots.stop - 1)
    poll_interval_s: float = Field(default=5.0, ge=0.2)
    care_area: str = Field(default="ICU", description="Drug-library care area written into the gateway config.")
    faults: FaultSpec = FaultSpec()
    at: list[Action] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rack_fields(self) -> PumpSpec:
        on_rack = self.rack is not None or self.pillar is not None or self.slot is not None
        if in_rack(self.protocol) and (self.rack is None or self.pillar is None or self.slot is None):
            raise ValueError(f"a {self.protocol} pump needs rack, pillar and slot")
        if not in_rack(self.protocol) and on_rack:
            racked = ", ".join(p for p in DRIVERS if in_rack(p))
            raise ValueError(f"rack, pillar and slot are for {racked} pumps, not {self.protocol}")
        for step in self.at:
            needed = _NEEDS_FIELD.get(step.action)
            if needed and needed not in IDENTITY_FIELDS_CARRIED[self.protocol]:
                carriers = sorted(p for p, f in IDENTITY_FIELDS_CARRIED.items() if needed in f) or ["none yet"]
                raise ValueError(
                    f"action {step.action!r} at t_s={step.t_s:g}: protocol {self.protocol} does not "
                    f"report the pump's {needed.replace('_', ' ')} (protocols that do: "
                    f"{', '.join(carriers)})"
                )
        return self


class RackSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    pillars: int = Field(default=len(SPACECOM.pillars), ge=1, le=len(SPACECOM.pillars))
    slots: int = Field(default=len(SPACECOM.slots), ge=1, le=len(SPACECOM.slots))
    port: int = Field(default=0, ge=0, le=65535, description="0: any free port")
    bed_id: str = "ComSystem"
    stuffing: bool = False


class GroupSpec(_Strict):
    """``count`` pumps from one template; ids ``<id_prefix><n>`` (n from 1, 4 digits)."""

    count: int = Field(ge=1, le=5000)
    id_prefix: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
    protocol: Protocol
    serial_prefix: str | None = None
    model: str | None = None
    firmware: str | None = None
    rate_ml_h: float = Field(default=5.0, ge=0)
    rate_step_ml_h: float = Field(default=0.0, ge=0, description="Added per pump, so the pumps differ.")
    vtbi_ml: float | None = Field(default=None, gt=0)
    drug: str | None = None
    running: bool = True
    acceleration: float | None = Field(default=None, gt=0)
    poll_interval_s: float = Field(default=5.0, ge=0.2)
    care_area: str = Field(default="ICU", description="Drug-library care area written into the gateway config.")
    faults: FaultSpec = FaultSpec()
    at: list[Action] = Field(default_factory=list)
    stride: int = Field(default=1, ge=1, description="Timeline applies to every stride-th pump.")
    stagger_s: float = Field(
        default=0.0, ge=0, description="Each selected pump acts this much later than the previous."
    )


class Simulation(_Strict):
    acceleration: float = Field(default=1.0, gt=0)
    duration_s: float = Field(default=0.0, ge=0, description="0: run until interrupted.")
    rack_host: Literal["127.0.0.1"] = "127.0.0.1"
    tick_s: float = Field(default=0.5, gt=0, le=5, description="Pty line timer period (watchdogs).")


class ScenarioFile(_Strict):
    simulation: Simulation = Simulation()
    racks: list[RackSpec] = Field(default_factory=list)
    pumps: list[PumpSpec] = Field(default_factory=list)
    groups: list[GroupSpec] = Field(default_factory=list)


class Scenario:
    """A validated scenario with groups expanded: ``pumps`` and ``racks`` by id."""

    def __init__(self, source: ScenarioFile, path: str = "<scenario>") -> None:
        self.source = source
        self.path = path
        self.simulation = source.simulation
        self.racks: dict[str, RackSpec] = {r.id: r for r in source.racks}
        self.pumps: list[PumpSpec] = list(source.pumps)
        for group in source.groups:
            self.pumps.extend(self._expand(group))
        self._check()

    def _expand(self, group: GroupSpec) -> list[PumpSpec]:
        out: list[PumpSpec] = []
        racks: list[str] = []
        for n in range(1, group.count + 1):
            rack: str | None = None
            pillar: int | None = None
            slot: int | None = None
            if in_rack(group.protocol):
                index = (n - 1) % RACK_POSITIONS
                if index == 0:
                    rack_id = f"{group.id_prefix}rack{len(racks) + 1}"
                    racks.append(rack_id)
                    self.racks.setdefault(rack_id, RackSpec(id=rack_id))
                per_pillar = len(SPACECOM.slots)
                rack, pillar, slot = racks[-1], index // per_pillar + 1, index % per_pillar + 1
            selected = (n - 1) % group.stride == 0
            shift = group.stagger_s * ((n - 1) // group.stride)
            timeline = [a.model_copy(update={"t_s": a.t_s + shift}) for a in group.at] if selected else []
            serial = f"{group.serial_prefix}{n:05d}" if group.serial_prefix else None
            out.append(
                PumpSpec(
                    id=f"{group.id_prefix}{n:04d}",
                    protocol=group.protocol,
                    serial=serial,
                    model=group.model,
                    firmware=group.firmware,
                    rate_ml_h=group.rate_ml_h + group.rate_step_ml_h * (n - 1),
                    vtbi_ml=group.vtbi_ml,
                    drug=group.drug,
                    running=group.running,
                    acceleration=group.acceleration,
                    poll_interval_s=group.poll_interval_s,
                    care_area=group.care_area,
                    faults=group.faults,
                    at=timeline,
                    rack=rack,
                    pillar=pillar,
                    slot=slot,
                )
            )
        return out

    def _check(self) -> None:
        problems: list[str] = []
        seen: dict[str, int] = {}
        positions: dict[tuple[str, int, int], str] = {}
        for index, pump in enumerate(self.pumps):
            if pump.id in seen:
                problems.append(f"pumps[{index}].id: {pump.id!r} already used by pumps[{seen[pump.id]}]")
            seen[pump.id] = index
            if pump.rack is not None:
                rack = self.racks.get(pump.rack)
                if rack is None:
                    problems.append(f"pumps[{index}] ({pump.id}).rack: no [[racks]] with id {pump.rack!r}")
                    continue
                assert pump.pillar is not None and pump.slot is not None
                if pump.pillar > rack.pillars or pump.slot > rack.slots:
                    problems.append(
                        f"pumps[{index}] ({pump.id}): pillar {pump.pillar} slot {pump.slot} is outside "
                        f"rack {rack.id} ({rack.pillars} x {rack.slots})"
                    )
                key = (pump.rack, pump.pillar, pump.slot)
                if key in positions:
                    problems.append(
                        f"pumps[{index}] ({pump.id}): rack {pump.rack} pillar {pump.pillar} slot "
                        f"{pump.slot} already holds {positions[key]}"
                    )
                positions[key] = pump.id
        if problems:
            raise ScenarioError(self.path, problems)


def in_rack(protocol: str) -> bool:
    """Whether the registry places pumps of ``protocol`` in a rack (pillar and slot)."""
    return isinstance(driver_spec(protocol).address, RackPosition)


def decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raises :class:`ScenarioError` naming file and keys."""
    name = str(path)
    too_long = path_problem(path)
    if too_long:
        raise ScenarioError(name[:120] + "...", [f"cannot read: {too_long}"])
    try:
        text = read_bounded(path, 4 * 1024 * 1024).decode("utf-8")
        deep = toml_too_deep(text)
        if deep is not None:
            raise ScenarioError(name, [f"not valid TOML: {deep}"])
        data = tomllib.loads(text)
    except (OSError, FileTooLarge) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ScenarioError(name, [f"cannot read: {reason}"]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(name, [f"not UTF-8 text (byte offset {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(name, [f"not valid TOML: {exc}"]) from None
    try:
        source = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        # Told like the gateway configuration's errors: FILE:LINE: KEY: expected / got, with
        # "did you mean" for a misspelt key (common.describe, common.diagnostics).
        lines = key_lines(text)
        problems = []
        for err in exc.errors():
            d = describe(err, root=ScenarioFile)
            problems.append(str(Problem(name, d.key, d.message, line_for(lines, d.line_key))))
        raise ScenarioError(name, problems) from None
    return Scenario(source, name)
