"""Every supported protocol in one table: its driver, its wire, how its pumps are addressed.

The configuration's validation, the poller's link grouping, ``check-config``'s wiring table
and the simulators all read these facts here, so they cannot disagree about which protocol
rides which link or who may share a wire. Adding a protocol is one :class:`DriverSpec` in
:data:`DRIVERS`; driver and simulator classes are named as ``"module:Class"`` and imported
only when asked for (python-can's ``BACKENDS``), so importing this module imports neither.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from drivers.base import PumpDriver
from drivers.errors import UnknownProtocol

LinkKind = Literal["serial", "tcp"]


@dataclass(frozen=True)
class LineAddress:
    """A pump's address on a shared RS-232 line; optional while the pump is alone on it."""

    values: range

    def __str__(self) -> str:
        return f"{self.values.start}-{self.values.stop - 1}"


@dataclass(frozen=True)
class RackPosition:
    """A pump's place in a rack, always required; drivers carry it as ``pillar * 100 + slot``
    because the driver contract has a single integer address."""

    name: str
    pillars: range
    slots: range

    @property
    def count(self) -> int:
        return len(self.pillars) * len(self.slots)

    @property
    def pillar_span(self) -> str:
        return _span(self.pillars)

    @property
    def slot_span(self) -> str:
        return _span(self.slots)

    def problem(self, pillar: int, slot: int) -> str | None:
        """What is wrong with this position, or None."""
        if pillar not in self.pillars:
            return f"a {self.name} rack has pillars {_span(self.pillars)}; got pillar = {pillar}"
        if slot not in self.slots:
            return f"a {self.name} pillar has slots {_span(self.slots)}; got slot = {slot}"
        return None

    def encode(self, pillar: int, slot: int) -> int:
        """The driver's integer address of a position; raises ValueError outside the rack."""
        if self.problem(pillar, slot) is not None:
            raise ValueError(
                f"{self.name} positions are pillar {_span(self.pillars)}, slot {_span(self.slots)}; got {pillar}/{slot}"
            )
        return pillar * 100 + slot


AddressRule = LineAddress | RackPosition | None
"""How pumps sharing a link are told apart; None: point to point (the pump answers whoever
talks on its port, so it needs a port of its own)."""


@dataclass(frozen=True)
class DriverSpec:
    """The facts of one protocol family (docs/reference/pump-protocols.md)."""

    protocol: str
    title: str
    """The family's name in messages and help texts."""
    driver: str
    """``module:Class`` of the read-only :class:`~drivers.base.PumpDriver`."""
    link: LinkKind
    address: AddressRule
    simulator: str
    """``module:Class`` of the pump-side front-end the simulators serve for this protocol."""
    baudrate: int | None = None
    """The pump's usual serial speed (the simulators' configs; the configuration's help)."""

    @property
    def multidrop(self) -> bool:
        """Several pumps may share one link, told apart by :attr:`address`."""
        return self.address is not None

    @property
    def wiring(self) -> str:
        """How a pump of this protocol is connected, as the configuration asks for it."""
        if isinstance(self.address, RackPosition):
            return f"host, port, pillar and slot of its {self.address.name} rack"
        return "a device path, or an rfc2217:// or socket:// URL of a serial device server"


SPACECOM = RackPosition("SpaceCom", pillars=range(1, 4), slots=range(1, 25))
"""B. Braun SpaceCom: pillar digit 1-3, slot 1-9 then A-O, i.e. 1-24 (pump-protocols.md §6.5)."""

DRIVERS: dict[str, DriverSpec] = {
    spec.protocol: spec
    for spec in (
        # §2.2: RS-232, addresses 0-99 on one line
        DriverSpec(
            "ne1000",
            "NE-1000",
            "drivers.ne1000.client:Ne1000Driver",
            "serial",
            LineAddress(range(0, 100)),
            "simulators.ne1000.frontend:Ne1000Line",
            baudrate=19200,
        ),
        # §3.2: RS-232, no address: one port per pump
        DriverSpec(
            "alaris",
            "Alaris",
            "drivers.alaris.client:AlarisDriver",
            "serial",
            None,
            "simulators.alaris.frontend:AlarisLine",
            baudrate=38400,
        ),
        # §6.2: one TCP connection per rack serves every slot
        DriverSpec(
            "bbraun-bcc",
            "B. Braun SpaceCom",
            "drivers.bbraun_bcc.client:BccDriver",
            "tcp",
            SPACECOM,
            "simulators.bbraun_bcc.rack:BccRack",
        ),
    )
}

if TYPE_CHECKING:
    ProtocolName = str
else:
    ProtocolName = Literal[tuple(DRIVERS)]
    """The protocol names as a type, for pydantic models (an enum in the JSON Schemas)."""


def driver_spec(protocol: str) -> DriverSpec:
    """The facts registered for ``protocol``; raises :class:`UnknownProtocol`."""
    spec = DRIVERS.get(protocol)
    if spec is None:
        raise UnknownProtocol(protocol, sorted(DRIVERS))
    return spec


def driver_class(protocol: str) -> type[PumpDriver]:
    """The driver class registered for ``protocol``; raises :class:`UnknownProtocol`."""
    target = driver_spec(protocol).driver
    cls = _load(target)
    if not (isinstance(cls, type) and issubclass(cls, PumpDriver)):
        raise TypeError(f"{target} registered for {protocol!r} is not a PumpDriver subclass")
    return cls


def simulator_class(protocol: str) -> type:
    """The pump-side front-end class the simulators serve for ``protocol``."""
    cls = _load(driver_spec(protocol).simulator)
    if not isinstance(cls, type):
        raise TypeError(f"{driver_spec(protocol).simulator} registered for {protocol!r} is not a class")
    return cls


def _load(target: str) -> object:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def _span(values: range) -> str:
    return f"{values.start}-{values.stop - 1}"
