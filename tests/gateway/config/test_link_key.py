"""The configuration's checks and the poller agree on which pumps share a wire.

Both use :class:`~gateway.config.links.LinkKey`; these tests hold them to it through the
real loader: for any two spellings of two wires, the loader treats the two pumps as sharing
a line exactly when the poller groups them onto one link, and exactly when the spellings
name the same wire.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import load_config_text
from gateway.config.links import serial_key, tcp_key
from gateway.config.problems import ConfigFileError
from gateway.poller.links import group_by_link

HEAD = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA19"
[outbox]
path = "/tmp/never-opened.sqlite"
"""

# Distinct wires; each is spelt in many ways below.
SERVER_HOSTS = ["ds1.ward.example", "Ds2.Ward.Example", "10.1.2.3", "fe80::1"]
IPV6_FORMS = {"fe80::1": ["fe80::1", "FE80::1", "fe80:0:0:0:0:0:0:1", "fe80:0000::0001"]}
PORTS = [4001, 4002]
SCHEMES = ["rfc2217", "socket"]
PATHS = ["/dev/ttyUSB0", "/dev/ttyusb0", "/dev/serial/by-id/usb-FTDI_A1"]


@st.composite
def host_spelling(draw: st.DrawFn, host: str) -> str:
    if host in IPV6_FORMS:
        return draw(st.sampled_from(IPV6_FORMS[host]))
    if host[0].isdigit():
        return host  # an IPv4 address has one spelling (leading zeros are refused)
    cased = "".join(ch.upper() if draw(st.booleans()) else ch.lower() for ch in host)
    return cased + draw(st.sampled_from(["", "."]))


@st.composite
def serial_wire(draw: st.DrawFn) -> tuple[tuple, str]:
    """(identity of the wire, one spelling of its URL)."""
    if draw(st.booleans()):
        path = draw(st.sampled_from(PATHS))
        return ("path", path), path
    scheme, host, port = (
        draw(st.sampled_from(SCHEMES)),
        draw(st.sampled_from(SERVER_HOSTS)),
        draw(st.sampled_from(PORTS)),
    )
    spelt = draw(host_spelling(host))
    if ":" in spelt:
        spelt = f"[{spelt}]"
    scheme_spelt = draw(st.sampled_from([scheme, scheme.upper()]))
    port_spelt = "0" * draw(st.integers(0, 2)) + str(port)
    options = draw(st.sampled_from(["", "?logging=debug", "?ign_set_control", "/?timeout=3"]))
    return ("server", scheme, host.lower(), port), f"{scheme_spelt}://{spelt}:{port_spelt}{options}"


@st.composite
def rack_wire(draw: st.DrawFn) -> tuple[tuple, str, int]:
    host, port = draw(st.sampled_from(SERVER_HOSTS)), draw(st.sampled_from(PORTS))
    return ("rack", host.lower(), port), draw(host_spelling(host)), port


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serial_pumps(url_a: str, url_b: str) -> str:
    """Two NE-1000 pumps at the same address: an error exactly when they share a line."""
    return HEAD + "".join(
        f"""
[[pumps]]
id = "p{i}"
protocol = "ne1000"
link = {{ type = "serial", url = {_toml(url)}, baudrate = 19200, address = 3 }}
"""
        for i, url in enumerate((url_a, url_b))
    )


def rack_pumps(a: tuple[str, int], b: tuple[str, int]) -> str:
    """Two rack pumps in the same slot: an error exactly when they are in one rack."""
    return HEAD + "".join(
        f"""
[[pumps]]
id = "p{i}"
protocol = "bbraun-bcc"
link = {{ type = "tcp", host = {_toml(host)}, port = {port}, pillar = 2, slot = 7 }}
"""
        for i, (host, port) in enumerate((a, b))
    )


def judged_shared(text: str, other_index_message: str) -> bool:
    """Whether the loader refused the second pump for clashing with the first on one link."""
    try:
        load_config_text(text)
    except ConfigFileError as exc:
        assert all(other_index_message in p.message for p in exc.issues), [p.message for p in exc.issues]
        return True
    return False


def polled_together(text_without_clash: str) -> bool:
    config = load_config_text(text_without_clash)
    return len(group_by_link(config.pumps)) == 1


@settings(max_examples=150, deadline=None)
@given(serial_wire(), serial_wire())
def test_checks_and_poller_agree_on_serial_lines_for_any_spelling(a, b):
    (wire_a, url_a), (wire_b, url_b) = a, b
    same = wire_a == wire_b
    assert judged_shared(serial_pumps(url_a, url_b), "already used by pumps[0]") is same
    assert polled_together(serial_pumps(url_a, url_b).replace("address = 3 }\n", "address = 4 }\n", 1)) is same
    assert (serial_key(url_a) == serial_key(url_b)) is same


@settings(max_examples=100, deadline=None)
@given(rack_wire(), rack_wire())
def test_checks_and_poller_agree_on_racks_for_any_spelling(a, b):
    (wire_a, host_a, port_a), (wire_b, host_b, port_b) = a, b
    same = wire_a == wire_b
    assert judged_shared(rack_pumps((host_a, port_a), (host_b, port_b)), "already used by pumps[0]") is same
    separate_slots = rack_pumps((host_a, port_a), (host_b, port_b)).replace("slot = 7", "slot = 8", 1)
    assert polled_together(separate_slots) is same
    assert (tcp_key(host_a, port_a) == tcp_key(host_b, port_b)) is same


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("rfc2217://Host:4001", "rfc2217://host:4001"),
        ("RFC2217://host.ward.example.:4001", "rfc2217://HOST.ward.example:04001?ign_set_control"),
        ("socket://[::1]:4001", "socket://[0:0:0:0:0:0:0:1]:4001"),
    ],
)
def test_spellings_of_one_serial_server_port_are_one_key(a, b):
    assert serial_key(a) == serial_key(b)


def test_device_paths_are_kept_as_given():
    assert serial_key("/dev/ttyUSB0") != serial_key("/dev/ttyusb0")
    assert str(serial_key("/dev/ttyUSB0")) == "serial:/dev/ttyUSB0"


def test_a_rack_spelt_in_two_cases_is_one_key():
    assert tcp_key("Rack1", 4001) == tcp_key("rack1", 4001)
    assert str(tcp_key("Rack1", 4001)) == "tcp:rack1:4001"
