"""A human summary of a configuration, for ``check-config`` and the daemon's start-up log."""

from __future__ import annotations

from gateway.config.model import GatewayConfig, SerialLink


def summarise(config: GatewayConfig, *, source: str) -> str:
    g = config.gateway
    lines = [
        f"{source}: OK",
        f"gateway  {g.gateway_id} (site {g.site}, ward {g.ward}, EUI-64 {g.eui64})",
        f"pumps    {len(config.pumps)}",
    ]
    for p in config.pumps:
        if isinstance(p.link, SerialLink):
            addr = f" address {p.link.address}" if p.link.address is not None else ""
            link = f"serial {p.link.url} {p.link.baudrate} {p.link.bytesize}{p.link.parity}{p.link.stopbits}{addr}"
        else:
            rack = f" pillar {p.link.pillar} slot {p.link.slot}" if p.link.pillar is not None else ""
            link = f"tcp {p.link.host}:{p.link.port}{rack}"
        where = f"  [{p.location}]" if p.location else ""
        lines.append(f"  - {p.id:<12} {p.protocol:<10} {link}  every {p.poll_interval_s:g} s{where}")
    lines.append(f"destinations {len(config.destinations)}")
    for d in config.destinations:
        tls = "TLS" if d.tls.enabled else "plain"
        lines.append(f"  - {d.name:<12} mllp {d.host}:{d.port} ({tls})  {', '.join(d.messages)}")
    if config.mqtt.enabled:
        m = config.mqtt
        lines.append(f"mqtt     {m.host}:{m.port} ({'TLS' if m.tls.enabled else 'plain'}) prefix {m.topic_prefix}")
    else:
        lines.append("mqtt     disabled")
    lines.append(f"outbox   {config.outbox.path} (budget {config.outbox.max_bytes / 1e6:.0f} MB)")
    if config.library is None:
        lines.append("library  none configured: no drug-library verdicts")
    else:
        pin = f"pinned sha256 {config.library.sha256[:12]}..." if config.library.sha256 else "NOT pinned"
        lines.append(f"library  {config.library.path} ({pin})")
    return "\n".join(lines)
