"""Rules that span several pumps or destinations, and the warnings of ``check-config``.

A single ``[[pumps]]`` table can be valid while the ward is not: two pumps with one id, two
NE-1000s on one RS-232 line answering to the same address, two pumps claiming one rack slot,
one serial device server port configured at 9600 baud for one pump and 19200 for another.
These checks work on lists of ``(index, model)`` so that the loader can run them on the pumps
that validated even when others did not, and report everything in one pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.registry import LineAddress, driver_spec
from gateway.config import security_checks
from gateway.config.links import LinkKey, SerialLink, TcpLink
from gateway.config.problems import KeyPath, Severity, format_key

if TYPE_CHECKING:
    from gateway.config.model import GatewayConfig, MllpDestination, PumpConfig

# A device path that reaches no pump; the demo config uses it until it fills in pty paths.
PLACEHOLDER_URLS = frozenset({"/dev/null"})

KIND_PURPOSE = {
    "pcd01": "periodic observations (PCD-01)",
    "pcd04": "alarms for the alert manager (PCD-04)",
    "pcd10": "infusion events (PCD-10)",
}


@dataclass(frozen=True)
class Finding:
    """A problem found across tables: where, what, and the other place involved."""

    key: KeyPath
    message: str
    severity: Severity = "error"
    related: tuple[KeyPath, ...] = ()

    @property
    def where(self) -> str:
        return format_key(self.key)


def cross_check(
    pumps: Sequence[tuple[int, PumpConfig]], destinations: Sequence[tuple[int, MllpDestination]]
) -> list[Finding]:
    """Every error that involves more than one pump or destination."""
    return duplicate_names([(i, p.id) for i, p in pumps], [(i, d.name) for i, d in destinations]) + shared_links(pumps)


def duplicate_names(pump_ids: Iterable[tuple[int, str]], destination_names: Iterable[tuple[int, str]]) -> list[Finding]:
    """Pump ids and destination names must be unique: they key topics, logs and outbox lanes."""
    return _duplicates("pumps", "id", "pump id", pump_ids) + _duplicates(
        "destinations", "name", "destination name", destination_names
    )


def pumps_by_link(pumps: Sequence[tuple[int, PumpConfig]]) -> dict[LinkKey, list[tuple[int, PumpConfig]]]:
    """Pumps by the physical link they are on (:class:`~gateway.config.links.LinkKey`, the key
    the poller groups by), placeholders left out: they reach no pump."""
    links: dict[LinkKey, list[tuple[int, PumpConfig]]] = defaultdict(list)
    for index, pump in pumps:
        if not (isinstance(pump.link, SerialLink) and pump.link.url in PLACEHOLDER_URLS):
            links[pump.link.key].append((index, pump))
    return links


def shared_links(pumps: Sequence[tuple[int, PumpConfig]]) -> list[Finding]:
    """Pumps sharing a serial line or a rack must agree on settings and have distinct addresses."""
    out: list[Finding] = []
    for key, members in pumps_by_link(pumps).items():
        if len(members) < 2:
            continue
        out += _shared_serial_line(key, members) if key.kind == "serial" else _shared_rack(key, members)
    return out


def _duplicates(table: str, field: str, label: str, names: Iterable[tuple[int, str]]) -> list[Finding]:
    first: dict[str, int] = {}
    out = []
    for index, name in names:
        if name in first:
            out.append(
                Finding(
                    (table, index, field),
                    f"duplicate {label} {name!r}, already used by {table}[{first[name]}]",
                    related=((table, first[name], field),),
                )
            )
        else:
            first[name] = index
    return out


def _shared_serial_line(key: LinkKey, members: list[tuple[int, PumpConfig]]) -> list[Finding]:
    url = key.where
    out: list[Finding] = []
    first_index, first = members[0]
    addresses: dict[int, int] = {}
    for index, pump in members[1:]:
        here, there = ("pumps", index, "link"), ("pumps", first_index, "link")
        if pump.protocol != first.protocol:
            out.append(
                Finding(
                    here + ("url",),
                    f"{url} already carries {first.protocol} pump "
                    f"{first.id!r} (pumps[{first_index}]); one serial line speaks one "
                    f"protocol; got {pump.protocol}",
                    related=(there + ("url",),),
                )
            )
        elif _frame(pump) != _frame(first):
            out.append(
                Finding(
                    here,
                    f"serial settings {_frame(pump)} differ from {_frame(first)} of "
                    f"pumps[{first_index}] ({first.id!r}) on the same line {url}; a port has "
                    "one baud rate and frame",
                    related=(there,),
                )
            )
    for index, pump in members:
        here = ("pumps", index, "link")
        rule = driver_spec(pump.protocol).address
        if not isinstance(rule, LineAddress):
            if pump.protocol == first.protocol and index != first_index:
                out.append(
                    Finding(
                        here + ("url",),
                        f"each {pump.protocol} pump needs a serial port of "
                        f"its own (its protocol has no address); {url} is also used by "
                        f"pumps[{first_index}] ({first.id!r})",
                        related=(("pumps", first_index, "link", "url"),),
                    )
                )
            continue
        address = pump.link.address if isinstance(pump.link, SerialLink) else None
        if address is None:
            out.append(
                Finding(
                    here,
                    f"{len(members)} pumps share {url}: each needs a distinct "
                    f"address (the pump's network address, {rule})",
                )
            )
        elif address in addresses:
            other = addresses[address]
            out.append(
                Finding(
                    here + ("address",),
                    f"address {address} on {url} is already used by "
                    f"pumps[{other}]; pumps sharing a line need distinct addresses",
                    related=(("pumps", other, "link", "address"),),
                )
            )
        else:
            addresses[address] = index
    return out


def _frame(pump: PumpConfig) -> str:
    link = pump.link
    if not isinstance(link, SerialLink):
        return "tcp"
    return f"{link.baudrate} {link.bytesize}{link.parity}{link.stopbits}"


def _shared_rack(key: LinkKey, members: list[tuple[int, PumpConfig]]) -> list[Finding]:
    out: list[Finding] = []
    taken: dict[tuple[int, int], int] = {}
    for index, pump in members:
        here = ("pumps", index, "link")
        link = pump.link
        if not isinstance(link, TcpLink) or link.pillar is None or link.slot is None:
            out.append(
                Finding(
                    here,
                    f"{len(members)} pumps share {key.where}: each needs its rack position (pillar and slot)",
                )
            )
            continue
        position = (link.pillar, link.slot)
        if position in taken:
            other = taken[position]
            out.append(
                Finding(
                    here + ("slot",),
                    f"pillar {position[0]} slot {position[1]} of rack {key.where} is already used by pumps[{other}]",
                    related=(("pumps", other, "link", "slot"),),
                )
            )
        else:
            taken[position] = index
    return out


def warnings(config: GatewayConfig) -> list[Finding]:
    """Things that are valid but probably not what a ward wants; shown by ``check-config``."""
    out: list[Finding] = []
    routed = {kind for d in config.destinations for kind in d.messages}
    if config.pumps and not config.destinations:
        out.append(Finding((), "no [[destinations]]: nothing is documented in the patient record", "warning"))
    elif config.pumps:
        for kind, purpose in KIND_PURPOSE.items():
            if kind not in routed:
                out.append(
                    Finding(("destinations",), f"{kind} is routed to no destination: {purpose} are not sent", "warning")
                )
    for index, pump in enumerate(config.pumps):
        here = ("pumps", index)
        if isinstance(pump.link, SerialLink) and pump.link.url in PLACEHOLDER_URLS:
            out.append(
                Finding(
                    here + ("link", "url"),
                    f"{pump.link.url} is a placeholder (pumpgw demo replaces it); no pump answers there",
                    "warning",
                )
            )
        if pump.comm_lost_after_s <= pump.poll_interval_s:
            out.append(
                Finding(
                    here + ("comm_lost_after_s",),
                    f"{pump.comm_lost_after_s:g} s is not longer than "
                    f"poll_interval_s ({pump.poll_interval_s:g} s): the pump will be reported "
                    "communication-lost between two polls",
                    "warning",
                )
            )
        if config.library is not None and not pump.care_area:
            out.append(
                Finding(
                    here,
                    f"pump {pump.id!r} has no care_area: its programs get the verdict 'care area unknown'",
                    "warning",
                )
            )
    if config.library is None:
        out.append(Finding((), "no [library]: programs are not checked against the drug library", "warning"))
    elif not config.library.sha256 and not config.library.trusted_keys:
        out.append(Finding(("library",), "sha256 is empty: whatever file is at library.path is accepted", "warning"))
    for index, dest in enumerate(config.destinations):
        if not dest.tls.enabled and dest.host not in ("127.0.0.1", "::1", "localhost"):
            out.append(
                Finding(
                    ("destinations", index, "tls"),
                    f"HL7 to {dest.name!r} ({dest.host}) is not encrypted; it carries patient data",
                    "warning",
                )
            )
    if config.mqtt.enabled and config.mqtt.include_patient_ids:
        out.append(
            Finding(("mqtt", "include_patient_ids"), "patient identifiers will be published over MQTT", "warning")
        )
    if config.logging.wire_trace:
        out.append(
            Finding(
                ("logging", "wire_trace"),
                "raw pump and HL7 traffic is logged; the logs will contain patient data",
                "warning",
            )
        )
    out += security_checks.security_findings(config)  # file modes, plaintext credentials, outbox place
    return out
