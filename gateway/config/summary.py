"""A human summary of a configuration, for ``check-config`` and the daemon's start-up log.

Pumps are grouped by how they are wired, because that is how a biomedical engineer walks
the ward: a serial device server with one pump per port, a local RS-232 adapter (possibly a
multi-drop line with addresses), a rack with pumps in pillars and slots. A pump plugged into
the wrong port shows up as a port number out of place in its server's list.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.config.model import GatewayConfig, PumpConfig, SerialLink, TcpLink
from gateway.config.problems import ConfigProblem

_SERVER_SCHEMES = {"rfc2217": "RFC 2217", "socket": "raw TCP"}


def summarise(config: GatewayConfig, *, source: str, warnings: Sequence[ConfigProblem] = ()) -> str:
    g = config.gateway
    lines = [
        f"{source}: OK" + (f", {len(warnings)} warning(s)" if warnings else ""),
        f"gateway       {g.gateway_id} (site {g.site}, ward {g.ward}, EUI-64 {_eui(g.eui64)})",
    ]
    groups = link_groups(config.pumps)
    lines.append(f"pumps         {len(config.pumps)} on {len(groups)} link(s)")
    for title, rows in groups.items():
        lines.append(f"  {title}")
        lines += _table([_pump_row(label, pump) for label, pump in rows], indent="    ")
    lines.append(f"destinations  {len(config.destinations)}")
    for d in config.destinations:
        tls = "TLS" if d.tls.enabled else "plain"
        ttl = ", ".join(f"{k} {_duration(d.ttl_s[k])}" for k in d.messages)
        lines.append(
            f"  {d.name}: mllp {d.host}:{d.port} ({tls}) <- {', '.join(d.messages)}; "
            f"ack timeout {d.ack_timeout_s:g} s; expire after {ttl}"
        )
    hl7 = config.hl7
    lines.append(
        f"hl7           PCD-01 every {_duration(hl7.pcd01_interval_s)} per pump; processing id {hl7.processing_id}"
    )
    if config.mqtt.enabled:
        m = config.mqtt
        lines.append(f"mqtt          {m.host}:{m.port} ({'TLS' if m.tls.enabled else 'plain'}) prefix {m.topic_prefix}")
    else:
        lines.append("mqtt          disabled")
    lines.append(f"outbox        {config.outbox.path} (budget {_size(config.outbox.max_bytes)})")
    if config.library is None:
        lines.append("library       none configured: no drug-library verdicts")
    else:
        lib = config.library
        pin = f"pinned sha256 {lib.sha256[:12]}..." if lib.sha256 else "NOT pinned"
        if lib.trusted_keys:
            pin = f"signed releases, {len(lib.trusted_keys)} trusted key(s)" + (f", {pin}" if lib.sha256 else "")
        lines.append(f"library       {lib.path or '(no local file)'} ({pin})")
    lines.append(
        f"logging       {config.logging.level}, {config.logging.format}"
        + (", WIRE TRACE ON (contains patient data)" if config.logging.wire_trace else "")
    )
    if warnings:
        lines.append(f"warnings      {len(warnings)}")
        lines += [f"  - {w}" for w in warnings]
    return "\n".join(lines)


def link_groups(pumps: Sequence[PumpConfig]) -> dict[str, list[tuple[str, PumpConfig]]]:
    """Pumps keyed by a title naming their wiring, each with its position on that link.

    Titles come from the link key the checks and the poller use (so two spellings of one
    wire are one group); serial device servers are grouped by host (a port per pump); a
    local serial device or a rack is one group. Groups keep the order of first appearance.
    """
    groups: dict[str, list[tuple[str, PumpConfig]]] = {}
    for pump in pumps:
        key = pump.link.key
        if key.scheme in _SERVER_SCHEMES:
            title = f"serial device server {key.host} ({_SERVER_SCHEMES[key.scheme]})"
            place = [f"port {key.port}"]
        elif key.kind == "serial":
            title, place = f"serial line {key.where}", []
        else:
            title, place = f"rack/TCP {key.where}", []
        groups.setdefault(title, []).append((" ".join(place + _address(pump)) or "-", pump))
    for rows in groups.values():
        rows.sort(key=lambda row: _natural(row[0]))
    return groups


def _address(pump: PumpConfig) -> list[str]:
    """The pump's address on its link: a rack position or a multidrop line address."""
    link = pump.link
    if isinstance(link, TcpLink) and link.pillar is not None:
        return [f"pillar {link.pillar} slot {link.slot}"]
    if isinstance(link, SerialLink) and link.address is not None:
        return [f"address {link.address}"]
    return []


def _pump_row(label: str, pump: PumpConfig) -> list[str]:
    link = pump.link
    frame = f"{link.baudrate} {link.bytesize}{link.parity}{link.stopbits}" if isinstance(link, SerialLink) else "tcp"
    return [
        label,
        pump.id,
        pump.protocol,
        frame,
        pump.location or "(no location)",
        pump.care_area or "(no care area)",
        f"every {pump.poll_interval_s:g} s",
    ]


def _table(rows: list[list[str]], *, indent: str) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _natural(text: str) -> list[object]:
    """Sort 'port 4010' after 'port 4009' and 'slot 10' after 'slot 9'."""
    return [(0, int(tok)) if tok.isdigit() else (1, tok) for tok in text.split()]


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _eui(compact: str) -> str:
    return "-".join(compact[i : i + 2] for i in range(0, 16, 2))


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
