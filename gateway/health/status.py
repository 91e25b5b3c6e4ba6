"""One plain snapshot of what the gateway is doing, read from its components.

The status page, ``/status.json``, ``/metrics`` (for the figures components already hold)
and ``pumpgw status`` all render this one dictionary, so they cannot disagree.

No patient data: pumps are shown by id and bed label (``location``, configured by the
biomedical engineer), with channel state, alarm kinds and drug-library verdicts. Drug name,
patient identifiers, weights and free text reported by pumps never enter the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class StatusSources:
    """What the snapshot reads; the composition root fills it in (tests build it directly)."""

    config: Any  # GatewayConfig
    version: str
    outbox: Any  # Outbox: .stats()
    pipeline: Any  # Pipeline: .pumps[id] -> PumpRuntime
    pollers: list = field(default_factory=list)  # LinkPoller
    senders: list = field(default_factory=list)  # MllpSender
    supervisor: Any = None  # Supervisor: started, stale_services()
    alerts: Any = None  # GatewayAlerts: raised, recent
    library: Any = None  # LibraryHolder or None
    mqtt: Any = None  # MqttPublisher or None
    started_at: float = field(default_factory=time.time)
    extra_reasons: list[Callable[[], list[str]]] = field(default_factory=list)


def snapshot(src: StatusSources) -> dict:
    cfg = src.config
    pumps, links = _pumps_and_links(src)
    lanes = _lanes(src)
    library = _library(src)
    mqtt = _mqtt(src)
    health = _health(src, links, lanes, mqtt)
    alerts = src.alerts
    return {
        "schema_version": SCHEMA_VERSION,
        "at": _iso(time.time()),
        "version": src.version,
        "uptime_s": round(time.time() - src.started_at, 1),
        "gateway": {"site": cfg.gateway.site, "ward": cfg.gateway.ward, "gateway_id": cfg.gateway.gateway_id},
        "health": health,
        "pumps": pumps,
        "links": links,
        "lanes": lanes,
        "library": library,
        "mqtt": mqtt,
        "alerts": {"raised": getattr(alerts, "raised", 0), "recent": list(getattr(alerts, "recent", []))[::-1]},
    }


def _pumps_and_links(src: StatusSources) -> tuple[list[dict], list[dict]]:
    polled: dict[str, tuple[Any, Any]] = {}
    links = []
    for poller in src.pollers:
        links.append(
            {
                "link": poller.key,
                "up": bool(poller.link_up),
                "pumps": [p.config.id for p in poller.pumps],
                "reconnects": poller.reconnects,
                "last_error": "" if poller.link_up else poller.last_link_error,
            }
        )
        for state in poller.pumps:
            polled[state.config.id] = (poller, state)
    now = datetime.now(UTC)
    pumps = []
    for pump in src.config.pumps:
        poller, state = polled.get(pump.id, (None, None))
        rt = src.pipeline.pumps.get(pump.id) if src.pipeline is not None else None
        snap = rt.last_snapshot if rt is not None else None
        last = state.last_poll_at if state is not None else None
        if state is None or last is None:
            communication = "lost" if state is not None and state.lost else "waiting"
        else:
            communication = "lost" if state.lost else ("failing" if state.failures else "ok")
        channels = []
        for ch in snap.channels if snap is not None else ():
            verdict = rt.verdicts.get(ch.channel_id) if rt is not None else None
            channels.append(
                {
                    "channel": ch.channel_id,
                    "state": ch.state.value,
                    "alarms": [{"kind": a.kind, "code": a.code, "priority": a.priority.value} for a in ch.alarms],
                    "verdict": None
                    if verdict is None
                    else {
                        "severity": verdict.severity.value,
                        "kinds": [str(k) for k in verdict.kinds],
                    },
                }
            )
        pumps.append(
            {
                "id": pump.id,
                "location": pump.location,
                "protocol": pump.protocol,
                "link": poller.key if poller is not None else "",
                "link_up": bool(poller.link_up) if poller is not None else False,
                "communication": communication,
                "last_poll": last.isoformat(timespec="seconds") if last is not None else None,
                "last_poll_age_s": round((now - last).total_seconds(), 1) if last is not None else None,
                "channels": channels,
                "events": rt.counters.get("events", 0) if rt is not None else 0,
                "messages": rt.counters.get("messages", 0) if rt is not None else 0,
            }
        )
    return pumps, links


def _lanes(src: StatusSources) -> list[dict]:
    try:
        stats = src.outbox.stats()
    except Exception as exc:  # a closed or locked file: show it, do not break the page
        return [
            {
                "lane": "(outbox)",
                "error": f"{type(exc).__name__}: {exc}",
                "pending": 0,
                "in_flight": 0,
                "delivered": 0,
                "quarantined": 0,
                "expired": 0,
                "thinned": 0,
                "bytes": 0,
                "oldest_pending_age_s": None,
                "sender": "",
                "last_error": "",
            }
        ]
    senders = {s.lane: s for s in src.senders}
    names = sorted(set(stats) | set(senders))
    out = []
    for name in names:
        st = stats.get(name)
        row = (
            st.as_dict()
            if st is not None
            else {
                "pending": 0,
                "in_flight": 0,
                "delivered": 0,
                "quarantined": 0,
                "expired": 0,
                "thinned": 0,
                "bytes": 0,
                "oldest_pending_age_s": None,
            }
        )
        sender = senders.get(name)
        row["oldest_pending_age_s"] = (
            None if row["oldest_pending_age_s"] is None else round(row["oldest_pending_age_s"], 1)
        )
        out.append(
            {
                "lane": name,
                **row,
                "sender": sender.state if sender is not None else ("mqtt" if name.startswith("mqtt-") else "none"),
                # failing: from the first failed attempt until one succeeds, whatever the state of
                # the moment (a lane between two retries is "connecting", not delivering)
                "failing": bool(sender is not None and sender.failing),
                "last_error": sender.last_error
                if sender is not None and (sender.state == "backoff" or sender.failing)
                else "",
            }
        )
    return out


def _library(src: StatusSources) -> dict:
    if src.config.library is None:
        return {"configured": False, "status": "none", "version": None, "sha256": None, "path": None}
    holder = src.library
    current = holder.current if holder is not None else None
    return {
        "configured": True,
        "status": "in force" if current is not None else "refused",
        "version": current.version if current is not None else None,
        "sha256": current.sha256[:16] if current is not None else None,
        "path": str(src.config.library.path) if src.config.library.path else "signed releases (trusted keys)",
    }


def _mqtt(src: StatusSources) -> dict:
    m = src.config.mqtt
    if not m.enabled:
        return {"enabled": False, "connected": False, "broker": None}
    connected = bool(src.mqtt is not None and src.mqtt.stats.connected)
    return {"enabled": True, "connected": connected, "broker": f"{m.host}:{m.port}"}


def _health(src: StatusSources, links: list[dict], lanes: list[dict], mqtt: dict) -> dict:
    """Liveness: the loop answers (this code runs). Readiness: every part does its job; each
    reason names what is not."""
    reasons: list[str] = []
    sup = src.supervisor
    if sup is not None:
        if not sup.started:
            reasons.append("starting: services not running yet")
        stale = sup.stale_services()
        if stale:
            reasons.append(f"services making no progress: {', '.join(stale)}")
    for link in links:
        if not link["up"]:
            reasons.append(
                f"pump link {link['link']} is down" + (f": {link['last_error']}" if link["last_error"] else "")
            )
    for lane in lanes:
        if lane.get("error"):
            reasons.append(f"outbox unreadable: {lane['error']}")
        elif lane["sender"] == "backoff" or lane.get("failing"):
            reasons.append(f"destination lane {lane['lane']} is not delivering: {lane['last_error']}")
    if mqtt["enabled"] and not mqtt["connected"]:
        reasons.append(f"MQTT broker {mqtt['broker']} not connected")
    if src.config.library is not None and (src.library is None or src.library.current is None):
        reasons.append("no drug library in force: programs get no verdicts")
    for extra in src.extra_reasons:
        reasons += extra()
    return {"live": True, "ready": not reasons, "reasons": reasons}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
