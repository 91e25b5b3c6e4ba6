"""``pumpgw demo``: the whole chain on one machine, with simulated pumps and a local EHR.

Everything in it is the real thing: simulated NE-1000 pumps answer the real protocol on
pseudo-terminals, the gateway polls them through the same poller and drivers as on a ward,
HL7 goes through the SQLite outbox and over MLLP to the EHR receiver simulator on a
loopback port, which acknowledges every message. Only the configuration is filled in at run
time (pty paths and the receiver's port are not known in advance).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

from common.resources import config_dir
from gateway.commands.check_config import print_config_error
from gateway.config import load_config
from gateway.config.model import GatewayConfig
from gateway.errors import ConfigError
from gateway.log import configure_logging

HELP = """\
Run a self-contained demonstration: simulated infusion pumps on pseudo-terminals, an EHR
receiver simulator on a free loopback port, and the gateway between them. Nothing leaves
this machine. It prints where everything is (pty paths, port, outbox file, the log of
received HL7 messages), then one line per pump every few seconds. Stop it with Ctrl-C.

The pumps, destinations and intervals come from the embedded config/demo.toml; give
--config to run another file of the same shape.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run simulated pumps + local EHR receiver + gateway",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=None, metavar="FILE", help="demo configuration (default: embedded demo.toml)")
    p.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="where the outbox and the received-message log go (default: a new temporary directory)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds; 0 or absent: run until Ctrl-C "
        "(as for `pumpgw simulate` and a scenario's duration_s)",
    )
    p.add_argument(
        "--mqtt",
        default=None,
        metavar="HOST:PORT",
        help="also publish live state, alarms and availability to this MQTT broker "
        "(e.g. 127.0.0.1:1883; watch with: mosquitto_sub -t 'pumpgw/#' -v)",
    )
    p.add_argument(
        "--status-every",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how often to print the per-pump lines (default: 15)",
    )
    p.add_argument(
        "--story-pace",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="time scale of the story: 0.6 plays it in 36 s (default 1: one minute)",
    )
    p.add_argument(
        "--exit-after-story",
        action="store_true",
        help="stop the demo a few seconds after the story is complete (scripted runs, tests); "
        "--duration still caps the run",
    )
    p.add_argument(
        "--no-story",
        action="store_true",
        help="do not run the one-minute story (infusion start, titration, occlusion, drug-library "
        "warning, a pump offline and back): the pumps just infuse",
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=0,
        metavar="PORT",
        help="port of the status page, /healthz and /metrics on 127.0.0.1 (default: a free port, printed)",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration >= 0:
        from gateway.commands.common import UsageError

        raise UsageError(f"--duration must be >= 0 seconds (0: run until Ctrl-C); got {args.duration:g}")
    if args.duration == 0:
        args.duration = None
    if not 0.3 <= args.story_pace <= 10:
        from gateway.commands.common import UsageError

        raise UsageError(f"--story-pace must be between 0.3 and 10; got {args.story_pace:g}")
    try:
        config = load_config(args.config or config_dir() / "demo.toml")
    except ConfigError as exc:
        return print_config_error(exc)
    own_state = not args.state_dir
    state = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="pumpgw-demo-"))
    state.mkdir(parents=True, exist_ok=True)
    # the story announces what matters; the log shows only errors (the journal of a real
    # gateway has the rest -- see docs/operations.md)
    configure_logging(level="error", fmt="console" if sys.stderr.isatty() else "json")
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        if not host or not port.isdigit():
            print(f"demo: --mqtt wants HOST:PORT, got {args.mqtt!r}", file=sys.stderr)
            return 2
        mqtt = config.mqtt.model_copy(update={"enabled": True, "host": host, "port": int(port)})
        config = config.model_copy(update={"mqtt": mqtt})
    health = config.health.model_copy(
        update={"enabled": True, "listen": "127.0.0.1", "port": args.health_port or _free_port()}
    )
    config = config.model_copy(update={"health": health})
    try:
        asyncio.run(
            _demo(
                config,
                state,
                args.duration,
                args.status_every,
                story=not args.no_story,
                pace=args.story_pace,
                exit_after_story=args.exit_after_story,
            )
        )
    finally:
        if own_state:  # a temporary folder of our own: leave nothing behind
            import shutil

            shutil.rmtree(state, ignore_errors=True)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resolve(config: GatewayConfig, state: Path, ptys: dict[str, str], ehr_port: int) -> GatewayConfig:
    """The demo config with the run-time facts filled in."""
    pumps = [p.model_copy(update={"link": p.link.model_copy(update={"url": ptys[p.id]})}) for p in config.pumps]
    destinations = [d.model_copy(update={"port": ehr_port, "host": "127.0.0.1"}) for d in config.destinations]
    outbox = config.outbox.model_copy(update={"path": state / config.outbox.path.name})
    return config.model_copy(update={"pumps": pumps, "destinations": destinations, "outbox": outbox})


async def _demo(
    config: GatewayConfig,
    state: Path,
    duration: float | None,
    status_every: float,
    *,
    story: bool = True,
    pace: float = 1.0,
    exit_after_story: bool = False,
) -> None:
    from common.pcd.conformance import conformance_findings
    from gateway.daemon import build_daemon
    from simulators.ehr import EhrReceiver
    from simulators.fleet import PtyFleet, demo_pumps

    log_path = state / "ehr-received.jsonl"
    receiver = EhrReceiver(host="127.0.0.1", port=0, log_path=log_path, checker=conformance_findings)
    port = await receiver.start()
    sim_pumps = demo_pumps()
    missing = [p.id for p in config.pumps if p.id not in sim_pumps]
    if missing:
        raise SystemExit(f"demo: no simulated pump for {missing}; demo pumps are {sorted(sim_pumps)}")
    from gateway.commands import demo_story
    from simulators.faults import Faults

    pumps = {p.id: sim_pumps[p.id] for p in config.pumps}
    faults = {pump_id: Faults() for pump_id in pumps}
    fleet = PtyFleet(pumps, faults=faults)
    ptys = await fleet.start()
    if story:
        demo_story.prepare(pumps)
    try:
        resolved = resolve(config, state, ptys, port)
        daemon = build_daemon(resolved)
        print("pumpgw demo")
        print(f"  EHR receiver (MLLP)   127.0.0.1:{port}")
        print(f"  received-message log  {log_path}")
        print(f"  outbox                {resolved.outbox.path}")
        print(
            f"  status page           http://127.0.0.1:{resolved.health.port}/  (also /healthz, /metrics; "
            f"pumpgw status --url http://127.0.0.1:{resolved.health.port}/)"
        )
        if resolved.library is not None:
            print(f"  drug library          {resolved.library.path}")
        if resolved.mqtt.enabled:
            m = resolved.mqtt
            print(
                f"  MQTT                  {m.host}:{m.port}  topics {m.topic_prefix}/{resolved.gateway.site}/"
                f"{resolved.gateway.gateway_id}/#"
            )
        for pump in resolved.pumps:
            print(f"  pump {pump.id:<8} {pump.protocol} on {ptys[pump.id]}  ({pump.location})")
        for listener in daemon.sources:
            daemon.supervisor.add(f"demo vendor server {listener.config.name}", _vendor_server(listener))
            print(
                f"  vendor pump server    simulated, sending IHE PCD to source {listener.config.name!r} "
                f"({len(_verdict_programs())} pumps, one per drug-library verdict kind)"
            )
        print("  Ctrl-C to stop\n", flush=True)

        async def status() -> None:
            while True:
                await asyncio.sleep(status_every)
                print(_status_lines(daemon, receiver), flush=True)

        async def stop_later(after_s: float) -> None:
            await asyncio.sleep(after_s)
            daemon.supervisor.request_stop()

        daemon.supervisor.add("demo status", status)
        if story:
            teller = demo_story.Story(
                daemon, receiver, pumps, faults, out=lambda line: print(line, flush=True), pace=pace
            )
            daemon.supervisor.add("demo story", partial(teller.script, exit_after=exit_after_story))
            daemon.supervisor.add("demo announcer", teller.announce)
        # closers run in reverse order: this one runs before the outbox is closed
        daemon.supervisor.on_close("demo status", lambda: print(_status_lines(daemon, receiver), flush=True))
        if duration is not None:
            daemon.supervisor.add("demo timer", partial(stop_later, duration))
        await daemon.run()
        print(json.dumps({"stopped": True, "received": len(receiver.received)}), flush=True)
    finally:
        await fleet.stop()
        await receiver.stop()
        if config.mqtt.enabled:
            await asyncio.to_thread(_clear_retained, config)


def _verdict_programs():
    from simulators.vendor_server.messages import VERDICT_PROGRAMS

    return VERDICT_PROGRAMS


def _vendor_server(listener):
    """The simulated vendor server: once the source listens, its twelve programs, then every
    30 s again (the demo's simulators are loopback-only, like the EHR)."""

    async def run() -> None:
        from simulators.vendor_server.client import VendorServer
        from simulators.vendor_server.script import Script, Server, run_script

        await listener.ready.wait()
        print(f"  source {listener.config.name!r} listening on {listener.config.bind}:{listener.port}", flush=True)
        server = VendorServer(listener.config.bind, listener.port, id_prefix="DEMO")
        try:
            await run_script(server, Script(server=Server(id_prefix="DEMO", repeat_pcd01_s=30)))
        finally:
            await server.close()

    return run


def _status_lines(daemon, receiver) -> str:
    lines = []
    stats = daemon.outbox.stats()
    queued = sum(s.pending + s.in_flight for s in stats.values())
    for pump_id, rt in daemon.pipeline.pumps.items():
        snap = rt.last_snapshot
        if snap is None:
            lines.append(f"  {pump_id:<8} no reply yet")
            continue
        ch = snap.channels[0] if snap.channels else None
        if ch is None:
            lines.append(f"  {pump_id:<8} no channel")
            continue
        alarms = ",".join(a.kind for a in ch.alarms) or "-"
        lines.append(
            f"  {pump_id:<8} {ch.state.value:<9} rate {ch.rate or '-'!s:<12} infused {ch.volume_infused or '-'!s:<12}"
            f" alarms {alarms:<12} messages {rt.counters['messages']}"
        )
    lines.append(f"  outbox queued {queued}, EHR received {len(receiver.received)}")
    return "\n".join(lines)


def _clear_retained(config: GatewayConfig) -> None:
    """Remove every retained MQTT topic the demo left under its gateway's base (status,
    inventory, library, per-pump state and availability -- pumps admitted from the vendor
    source included) by publishing empty retained messages, so a broker shared with other work
    is left as it was found. Best effort: an unreachable broker is reported, not fatal."""
    import time

    import paho.mqtt.client as paho

    from gateway.mqtt.topics import Topics

    topics = Topics(config.mqtt.topic_prefix, config.gateway.site, config.gateway.gateway_id)
    found: set[str] = {topics.status, topics.inventory}
    last = [time.monotonic()]

    def on_message(_client, _userdata, message) -> None:
        if message.retain and message.payload:
            found.add(message.topic)
        last[0] = time.monotonic()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pumpgw-demo-cleanup-{config.gateway.gateway_id}")
    client.on_message = on_message
    try:
        client.connect(config.mqtt.host, config.mqtt.port, keepalive=10)
        client.loop_start()
        client.subscribe(f"{topics.base}/#", qos=1)
        deadline = time.monotonic() + 3.0  # retained messages arrive right after the SUBACK
        while time.monotonic() < deadline and time.monotonic() - last[0] <= 0.5:
            time.sleep(0.1)
        client.unsubscribe(f"{topics.base}/#")
        names = sorted(found)
        infos = [client.publish(name, b"", qos=1, retain=True) for name in names]
        for info in infos:
            info.wait_for_publish(timeout=5)
        client.disconnect()
        client.loop_stop()
        print(f"MQTT: removed {len(names)} retained topic(s) under {topics.base}/", flush=True)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"MQTT: could not remove the demo's retained topics: {exc}", file=sys.stderr, flush=True)
