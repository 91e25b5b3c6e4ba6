"""How a pump is reached (serial line or TCP rack), and the one key naming each physical link.

:class:`LinkKey` is the single answer to "are these two pumps on the same wire?": the
configuration's checks (shared lines, rack slots, serial settings), the poller's grouping
(one poller, one open link per key) and ``check-config``'s wiring table all use it, so the
configuration can never accept a shared line that the poller then opens twice. Spellings of
one wire map to one key: host names are case-folded (DNS names are case-insensitive; a
trailing dot is dropped), IP addresses are written in their one canonical form, ports as
plain numbers, URL schemes in lower case, and pyserial's ``?options`` are ignored (they tune
the client, not the port). Device paths are kept as given: ``/dev/ttyUSB0`` and
``/dev/ttyusb0`` are different files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from drivers.registry import DRIVERS, LineAddress, LinkKind, RackPosition
from gateway.config.strict import StrictModel, rule_error

# pyserial URL handlers a serial link may name (serial_for_url); rfc2217 and socket reach
# serial device servers, the others are for testing and diagnosis.
SERIAL_URL_SCHEMES = frozenset({"rfc2217", "socket", "loop", "spy", "alt", "hwgrep"})
SERVER_SCHEMES = frozenset({"rfc2217", "socket"})
"""URL schemes naming a serial device server's TCP port (HOST:PORT)."""


@dataclass(frozen=True)
class LinkKey:
    """One physical link, spelt one way: ``serial:<path or URL>`` or ``tcp:<host>:<port>``.

    ``where`` is what messages show; ``scheme``, ``host`` and ``port`` are set for a serial
    device server's port and for a rack (equal keys have equal parts: they are derived from
    ``where``).
    """

    kind: LinkKind
    where: str
    scheme: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.where}"


def canonical_host(host: str) -> str:
    """A host as one spelling: IP addresses compressed, names case-folded without a final dot."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare).compressed
    except ValueError:
        name = bare.casefold()
        return name[:-1] if name.endswith(".") and len(name) > 1 else name


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_server_url(rest: str) -> tuple[str, str]:
    """HOST and PORT of the part of an rfc2217:// or socket:// URL after the scheme."""
    hostport = rest.split("?", 1)[0].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return host, port


def serial_key(url: str) -> LinkKey:
    """The key of a serial link's device path or pyserial URL (validated by :class:`SerialLink`)."""
    if "://" not in url:
        return LinkKey("serial", url)
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme in SERVER_SCHEMES:
        host, port = split_server_url(rest)
        host, number = canonical_host(host), int(port)
        return LinkKey("serial", f"{scheme}://{_host_port(host, number)}", scheme, host, number)
    return LinkKey("serial", f"{scheme}://{rest.split('?', 1)[0]}")


def tcp_key(host: str, port: int) -> LinkKey:
    """The key of a TCP link (a rack's communication module)."""
    host = canonical_host(host)
    return LinkKey("tcp", _host_port(host, port), "tcp", host, port)


def _serial_help() -> tuple[str, str]:
    """The pumps' serial speeds and line addresses, for the field descriptions."""
    speeds = ", ".join(f"{s.title}: {s.baudrate}" for s in DRIVERS.values() if s.baudrate)
    addresses = ", ".join(f"{s.title}: {s.address}" for s in DRIVERS.values() if isinstance(s.address, LineAddress))
    return speeds, addresses


def _rack_help() -> tuple[str, str]:
    racks = [(s.title, s.address) for s in DRIVERS.values() if isinstance(s.address, RackPosition)]
    return ", ".join(f"{t}: {r.pillar_span}" for t, r in racks), ", ".join(f"{t}: {r.slot_span}" for t, r in racks)


_SPEEDS, _ADDRESSES = _serial_help()
_PILLARS, _SLOTS = _rack_help()


class SerialLink(StrictModel):
    """A pump on RS-232: a local device, a pseudo-terminal, or a serial device server."""

    type: Literal["serial"] = Field(description="Selects this kind of link.")
    url: str = Field(
        min_length=1,
        description="Device path (/dev/ttyUSB0, /dev/serial/by-id/...), or a pyserial URL: "
        "rfc2217://host:port for RFC 2217 serial servers, socket://host:port for raw TCP serial servers.",
    )
    baudrate: Literal[300, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        default=9600, description=f"Bits per second; must match the pump's setting ({_SPEEDS})."
    )
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits per character.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Parity: N none, E even, O odd.")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits.")
    address: int | None = Field(
        default=None, ge=0, le=99, description=f"Pump network address on a multi-drop line ({_ADDRESSES})."
    )

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str) -> str:
        if "://" not in value:
            return value  # a device path
        scheme, rest = value.split("://", 1)
        if scheme.lower() not in SERIAL_URL_SCHEMES:
            raise ValueError(
                f"unsupported URL scheme {scheme!r}; expected a device path, rfc2217://HOST:PORT or socket://HOST:PORT"
            )
        if scheme.lower() in SERVER_SCHEMES:
            host, port = split_server_url(rest)
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{scheme}:// needs HOST:PORT, e.g. {scheme}://10.1.2.3:4001")
        return value

    @property
    def key(self) -> LinkKey:
        """The physical line this link names (:class:`LinkKey`)."""
        return serial_key(self.url)


class TcpLink(StrictModel):
    """A pump reached over TCP, e.g. one slot of a B. Braun SpaceCom rack (one connection per rack)."""

    type: Literal["tcp"] = Field(description="Selects this kind of link.")
    host: str = Field(min_length=1, description="Address or name of the rack's communication module.")
    port: int = Field(ge=1, le=65535, description="TCP port of the rack (SpaceCom installations often use 4001).")
    pillar: int | None = Field(default=None, ge=1, le=99, description=f"Rack pillar ({_PILLARS}).")
    slot: int | None = Field(default=None, ge=1, le=99, description=f"Slot within the pillar ({_SLOTS}).")

    @model_validator(mode="after")
    def _pillar_with_slot(self) -> TcpLink:
        if (self.pillar is None) != (self.slot is None):
            given, absent = ("pillar", "slot") if self.slot is None else ("slot", "pillar")
            raise rule_error(given, f"pillar and slot must be given together (rack address); {absent} is missing")
        return self

    @property
    def key(self) -> LinkKey:
        """The connection this link names (:class:`LinkKey`): one per rack."""
        return tcp_key(self.host, self.port)


Link = Annotated[SerialLink | TcpLink, Field(discriminator="type")]
