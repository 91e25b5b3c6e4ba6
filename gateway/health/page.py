"""The status page: the snapshot of gateway.health.status as one self-refreshing HTML page.

Rendered on the server from the same dictionary as ``/status.json`` (no JavaScript, so it
works in any browser on a locked-down ward PC); ``<meta http-equiv=refresh>`` reloads it.
Every value is escaped: pump-reported text must never become markup.
"""

from __future__ import annotations

from html import escape

REFRESH_S = 5

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:left}
th{background:#f4f4f4} .ok{color:#176917} .bad{color:#b00020;font-weight:bold} .warn{color:#8a5a00}
.muted{color:#777} .banner{padding:.5em .8em;border-radius:4px;margin:.5em 0}
.banner.ok{background:#e6f4e6} .banner.bad{background:#fde7ea}
"""


def render(status: dict, *, refresh_s: int = REFRESH_S) -> str:
    g = status["gateway"]
    title = f"pumpgw {g['gateway_id']} -- ward {g['ward']}"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="refresh" content="{int(refresh_s)}">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<div class=muted>site {_e(g['site'])} &middot; pumpgw {_e(status['version'])} &middot; "
        f"up {_duration(status['uptime_s'])} &middot; as of {_e(status['at'])} (refreshes every {int(refresh_s)} s)</div>",
        _health(status["health"]),
        _pumps(status["pumps"]),
        _lanes(status["lanes"]),
        _library_mqtt(status["library"], status["mqtt"]),
        _alerts(status["alerts"]),
        "</body></html>",
    ]
    return "\n".join(parts)


def _health(h: dict) -> str:
    if h["ready"]:
        return '<div class="banner ok" id=health>Ready: every pump link, destination and service is working.</div>'
    items = "".join(f"<li>{_e(r)}</li>" for r in h["reasons"])
    return f'<div class="banner bad" id=health>Not ready:<ul>{items}</ul></div>'


def _pumps(pumps: list[dict]) -> str:
    rows = []
    for p in pumps:
        comm_cls = {"ok": "ok", "failing": "warn", "waiting": "muted"}.get(p["communication"], "bad")
        channels = p["channels"] or [None]
        for i, ch in enumerate(channels):
            head = (
                (
                    f"<td>{_e(p['id'])}</td><td>{_e(p['location'])}</td><td>{_e(p['protocol'])}</td>"
                    f"<td class={'ok' if p['link_up'] else 'bad'}>{'up' if p['link_up'] else 'down'}</td>"
                    f"<td class={comm_cls}>{_e(p['communication'])}</td>"
                    f"<td>{_e(_age(p['last_poll_age_s']))}</td>"
                )
                if i == 0
                else "<td></td>" * 6
            )
            if ch is None:
                rows.append(f"<tr>{head}<td class=muted>-</td><td>-</td><td>-</td><td>-</td></tr>")
                continue
            alarms = ", ".join(f"{a['kind']} ({a['priority']})" for a in ch["alarms"]) or "-"
            verdict = ch["verdict"]
            vtext = "-" if verdict is None else f"{verdict['severity']}: {', '.join(verdict['kinds'])}"
            vcls = "" if verdict is None else {"critical": "bad", "warning": "warn"}.get(verdict["severity"], "ok")
            rows.append(
                f"<tr>{head}<td>{_e(ch['channel'])}</td><td>{_e(ch['state'])}</td>"
                f"<td class={'bad' if ch['alarms'] else ''}>{_e(alarms)}</td><td class={vcls or 'muted'}>{_e(vtext)}</td></tr>"
            )
    return (
        f"<h2>Pumps ({len(pumps)})</h2><table id=pumps><tr><th>pump</th><th>location</th><th>protocol</th>"
        "<th>link</th><th>communication</th><th>last poll</th><th>channel</th><th>state</th><th>alarms</th>"
        "<th>drug-library verdict</th></tr>" + "".join(rows) + "</table>"
    )


def _lanes(lanes: list[dict]) -> str:
    rows = "".join(
        f"<tr><td>{_e(l['lane'])}</td><td>{_e(l['sender'])}</td><td>{l['pending']}</td><td>{_e(_age(l['oldest_pending_age_s']))}</td>"
        f"<td>{l['in_flight']}</td><td>{l['delivered']}</td><td class={'bad' if l['quarantined'] else ''}>{l['quarantined']}</td>"
        f"<td class={'warn' if l['expired'] else ''}>{l['expired']}</td><td class=muted>{_e(l.get('last_error') or l.get('error') or '')}</td></tr>"
        for l in lanes
    )
    return (
        "<h2>Outbox lanes</h2><table id=lanes><tr><th>lane</th><th>sender</th><th>backlog</th><th>oldest</th>"
        "<th>in flight</th><th>delivered</th><th>quarantined</th><th>expired</th><th>last error</th></tr>"
        + rows
        + "</table>"
    )


def _library_mqtt(lib: dict, mqtt: dict) -> str:
    if not lib["configured"]:
        ltext = "<span class=warn>none configured: programs are not checked</span>"
    elif lib["version"]:
        ltext = f"<span class=ok>version {_e(lib['version'])}</span> <span class=muted>sha256 {_e(lib['sha256'])}&hellip; {_e(lib['path'])}</span>"
    else:
        ltext = f"<span class=bad>refused or unreadable: {_e(lib['path'])}</span>"
    if not mqtt["enabled"]:
        mtext = "<span class=muted>disabled</span>"
    else:
        mtext = (
            f"<span class={'ok' if mqtt['connected'] else 'bad'}>{'connected' if mqtt['connected'] else 'not connected'}"
            f"</span> <span class=muted>{_e(mqtt['broker'])}</span>"
        )
    return f"<h2>Drug library and MQTT</h2><p id=library>Drug library: {ltext}</p><p id=mqtt>MQTT: {mtext}</p>"


def _alerts(alerts: dict) -> str:
    if not alerts["recent"]:
        return "<h2>Recent gateway alerts</h2><p id=alerts class=muted>none since start</p>"
    rows = "".join(
        f"<tr><td>{_e(a['at'])}</td><td>{_e(a['alert'])}</td><td class=muted>"
        f"{_e(', '.join(f'{k}={v}' for k, v in a['details'].items()))}</td></tr>"
        for a in alerts["recent"]
    )
    return (
        f"<h2>Recent gateway alerts ({alerts['raised']} since start)</h2><table id=alerts>"
        "<tr><th>at</th><th>alert</th><th>details</th></tr>" + rows + "</table>"
    )


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{_duration(seconds)} ago"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"
