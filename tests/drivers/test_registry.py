"""Protocol names resolve lazily to driver classes; unknown names fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drivers.base import PumpDriver
from drivers.errors import UnknownProtocol
from drivers.ne1000.client import Ne1000Driver
from drivers.registry import DRIVERS, SPACECOM, LineAddress, RackPosition, driver_class, simulator_class


def test_ne1000_resolves_to_its_driver():
    assert driver_class("ne1000") is Ne1000Driver
    assert issubclass(driver_class("ne1000"), PumpDriver)


def test_every_registered_driver_names_its_protocol_and_has_an_allowlist():
    for name in DRIVERS:
        cls = driver_class(name)
        assert cls.protocol == name
        assert isinstance(cls.ALLOWED_COMMANDS, frozenset) and cls.ALLOWED_COMMANDS


def test_unknown_protocol_error_lists_the_known_ones():
    with pytest.raises(UnknownProtocol) as caught:
        driver_class("alaris-typo")
    assert "alaris-typo" in str(caught.value) and "ne1000" in str(caught.value)


def test_importing_the_registry_imports_no_driver(subprocess_env):
    code = "import sys, drivers.registry; print('drivers.ne1000.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env, check=True)
    assert out.stdout.strip() == "False"


def test_every_registered_protocol_names_a_simulator_front_end_that_exists():
    for name, spec in DRIVERS.items():
        cls = simulator_class(name)
        assert isinstance(cls, type), name
        assert spec.protocol == name and spec.link in ("serial", "tcp")


def test_the_link_kind_decides_the_address_rule():
    """Point-to-point and line addresses ride serial lines; rack positions ride TCP."""
    for spec in DRIVERS.values():
        if isinstance(spec.address, RackPosition):
            assert spec.link == "tcp" and spec.multidrop
        elif isinstance(spec.address, LineAddress):
            assert spec.link == "serial" and spec.multidrop
        else:
            assert not spec.multidrop


def test_rack_positions_encode_pillar_and_slot_and_refuse_what_the_rack_lacks():
    assert SPACECOM.encode(3, 24) == 324 and SPACECOM.count == 72
    assert SPACECOM.problem(4, 1) == "a SpaceCom rack has pillars 1-3; got pillar = 4"
    with pytest.raises(ValueError, match="pillar 1-3, slot 1-24"):
        SPACECOM.encode(1, 25)


def test_importing_the_registry_imports_no_simulator(subprocess_env):
    code = "import sys, drivers.registry; print(any(m.startswith('simulators') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env, check=True)
    assert out.stdout.strip() == "False"
