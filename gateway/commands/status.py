"""``pumpgw status [FILE] [--json]``: what the running daemon's status page shows, on a terminal.

It asks the daemon's own health listener (``[health]`` of the configuration) for
``/status.json`` -- the same snapshot the page renders -- so the command and the page never
disagree, and it works for any user who can reach the listener (no access to the outbox file
needed).
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import urllib.error
import urllib.request

from gateway.commands.check_config import print_config_error
from gateway.commands.common import add_config_argument, config_path
from gateway.config import load_config
from gateway.errors import ConfigError

HELP = """\
Show what the running gateway is doing: readiness and its reasons, every pump (link,
communication, last poll, channel state, alarms, drug-library verdict), every outbox lane
(backlog, oldest pending message, sender state), the drug library in force, MQTT and the
recent gateway alerts. No patient data.

It reads the daemon's health listener named in the configuration's [health] section
(default http://127.0.0.1:9180/); --url overrides it. The same is served as a web page at
that address, /healthz answers monitoring probes and /metrics Prometheus.

Exit codes: 0 ready; 3 running but not ready (the reasons are printed); 1 the daemon cannot
be reached or the configuration is invalid; 2 usage error.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="show the running daemon's pumps, lanes and health",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(
        p, required=False, help_="gateway configuration, for the [health] address (default /etc/pumpgw/gateway.toml)"
    )
    p.add_argument("--url", help="base URL of the health listener, e.g. http://127.0.0.1:9180/")
    p.add_argument("--json", action="store_true", help="print the status as JSON (as /status.json)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from gateway.commands.common import DEFAULT_CONFIG

    headers: dict[str, str] = {}
    context: ssl.SSLContext | None = None
    url = args.url
    path = config_path(args)
    if url is None or path is not None:
        try:
            config = load_config(path or DEFAULT_CONFIG)
        except ConfigError as exc:
            return print_config_error(exc)
        h = config.health
        if not h.enabled and url is None:
            print(
                f"pumpgw status: the health listener is disabled in {path or DEFAULT_CONFIG} ([health] enabled = false)",
                file=sys.stderr,
            )
            return 1
        if url is None:
            host = f"[{h.listen}]" if ":" in h.listen else h.listen
            url = f"{'https' if h.cert_file else 'http'}://{host}:{h.port}/"
        if h.username and h.password_file:
            from gateway.credentials import CredentialError, read_secret

            try:
                password = read_secret(h.password_file)
            except CredentialError as exc:
                print(f"pumpgw status: {exc}", file=sys.stderr)
                return 1
            token = base64.b64encode(f"{h.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if h.cert_file:
            context = ssl.create_default_context(cafile=str(h.cert_file))
    status = _fetch(url.rstrip("/") + "/status.json", headers, context)
    if status is None:
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(render_text(status))
    return 0 if status["health"]["ready"] else 3


def _fetch(url: str, headers: dict[str, str], context: ssl.SSLContext | None) -> dict | None:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"pumpgw status: {url}: HTTP {exc.code} {exc.reason}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(
            f"pumpgw status: cannot reach the daemon at {url}: {getattr(reason, 'strerror', None) or reason} "
            "(is pumpgw running? see `systemctl status pumpgw`)",
            file=sys.stderr,
        )
    except ValueError:
        print(f"pumpgw status: {url} did not answer with JSON (is that a pumpgw health listener?)", file=sys.stderr)
    return None


def render_text(s: dict) -> str:
    g = s["gateway"]
    h = s["health"]
    lines = [
        f"pumpgw {s['version']}  gateway {g['gateway_id']}  site {g['site']}  ward {g['ward']}  up {int(s['uptime_s'])} s",
        "health        " + ("READY" if h["ready"] else "NOT READY"),
    ]
    lines += [f"  - {r}" for r in h["reasons"]]
    lines.append(f"pumps         {len(s['pumps'])}")
    for p in s["pumps"]:
        age = "-" if p["last_poll_age_s"] is None else f"{p['last_poll_age_s']:.0f} s ago"
        head = (
            f"  {p['id']:<14} {p['location'][:16]:<16} link {'up' if p['link_up'] else 'DOWN':<4} "
            f"{p['communication']:<8} last poll {age:<10}"
        )
        if not p["channels"]:
            lines.append(head)
        for i, ch in enumerate(p["channels"]):
            alarms = ",".join(a["kind"] for a in ch["alarms"]) or "-"
            verdict = (
                "-" if ch["verdict"] is None else f"{ch['verdict']['severity']}:{','.join(ch['verdict']['kinds'])}"
            )
            lines.append(
                f"{head if i == 0 else ' ' * len(head)} ch {ch['channel']} {ch['state']:<9} alarms {alarms:<12} "
                f"verdict {verdict}"
            )
    lines.append("lanes")
    for lane in s["lanes"]:
        oldest = "-" if lane["oldest_pending_age_s"] is None else f"{lane['oldest_pending_age_s']:.0f} s"
        lines.append(
            f"  {lane['lane']:<22} {lane['sender']:<9} backlog {lane['pending']:<6} oldest {oldest:<8} "
            f"delivered {lane['delivered']:<7} quarantined {lane['quarantined']} expired {lane['expired']}"
        )
    lib = s["library"]
    lines.append(
        "library       "
        + (
            "none configured"
            if not lib["configured"]
            else f"{lib['version']} (sha256 {lib['sha256']}...)"
            if lib["version"]
            else "REFUSED"
        )
    )
    m = s["mqtt"]
    lines.append(
        "mqtt          "
        + ("disabled" if not m["enabled"] else f"{'connected' if m['connected'] else 'NOT CONNECTED'} to {m['broker']}")
    )
    lines.append(f"alerts        {s['alerts']['raised']} since start")
    lines += [f"  {a['at']} {a['alert']}" for a in s["alerts"]["recent"][:5]]
    return "\n".join(lines)
