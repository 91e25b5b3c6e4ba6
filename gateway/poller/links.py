"""Which pumps share a wire, how that wire is opened, and each pump's address on it.

Pumps are grouped by :class:`~gateway.config.links.LinkKey`, the same key the configuration's
checks use, so a line the configuration accepted as shared is polled by exactly one poller
over one open link, however its pumps' URLs or host names are spelt. The link is opened with
the first pump's settings (the checks made sure the others agree).
"""

from __future__ import annotations

from collections.abc import Iterable

from drivers.registry import RackPosition, driver_spec
from drivers.transport import Link, open_serial, open_tcp
from gateway.config.model import PumpConfig, SerialLink


def group_by_link(pumps: Iterable[PumpConfig]) -> dict[str, list[PumpConfig]]:
    """Pumps by ``str(link key)``, in order of first appearance: one poller per entry."""
    groups: dict[str, list[PumpConfig]] = {}
    for pump in pumps:
        groups.setdefault(str(pump.link.key), []).append(pump)
    return groups


async def open_link(pump: PumpConfig, name: str) -> Link:
    """Open ``pump``'s link, named ``name`` in logs and wire traces."""
    link = pump.link
    if isinstance(link, SerialLink):
        return await open_serial(
            link.url,
            name=name,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity,
            stopbits=link.stopbits,
        )
    return await open_tcp(link.host, link.port, name=name)


def driver_address(pump: PumpConfig) -> int | None:
    """The driver's ``address``: the multidrop address of a serial pump, or a rack position
    encoded by the protocol's :class:`~drivers.registry.RackPosition` rule."""
    link = pump.link
    if isinstance(link, SerialLink):
        return link.address
    rule = driver_spec(pump.protocol).address
    if link.pillar is None or link.slot is None or not isinstance(rule, RackPosition):
        return None
    return rule.encode(link.pillar, link.slot)
