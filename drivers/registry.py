"""Protocol name -> driver class, imported lazily (python-can's BACKENDS idea).

Adding a protocol is one line in :data:`DRIVERS`; importing this module imports no driver.
"""

from __future__ import annotations

import importlib

from drivers.base import PumpDriver
from drivers.errors import UnknownProtocol

DRIVERS: dict[str, str] = {
    "ne1000": "drivers.ne1000.client:Ne1000Driver",
    "alaris": "drivers.alaris.client:AlarisDriver",
    "bbraun-bcc": "drivers.bbraun_bcc.client:BccDriver",
}


def driver_class(protocol: str) -> type[PumpDriver]:
    """The driver class registered for ``protocol``; raises :class:`UnknownProtocol`."""
    target = DRIVERS.get(protocol)
    if target is None:
        raise UnknownProtocol(protocol, sorted(DRIVERS))
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, PumpDriver)):
        raise TypeError(f"{target} registered for {protocol!r} is not a PumpDriver subclass")
    return cls
