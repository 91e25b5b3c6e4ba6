"""Protocol names resolve lazily to driver classes; unknown names fail clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from drivers.base import PumpDriver
from drivers.errors import UnknownProtocol
from drivers.ne1000.client import Ne1000Driver
from drivers.registry import DRIVERS, driver_class


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
