"""The composition root: builds every component from one :class:`GatewayConfig`.

This is the only place that knows all parts; tests and the demo swap in simulators by
pointing the configuration at them, not by replacing components.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from gateway import __version__
from gateway.alerts import GatewayAlerts
from gateway.config import load_config
from gateway.config.model import GatewayConfig
from gateway.druglib import LibraryHolder
from gateway.druglib.releases import AuditHook, ReleaseApplier
from gateway.errors import ConfigError
from gateway.health.metrics import GatewayMetrics
from gateway.health.status import StatusSources, snapshot
from gateway.hl7 import ControlIdGenerator
from gateway.lanes import lanes
from gateway.library_wiring import build_signed_library
from gateway.log import get_logger
from gateway.looplag import LoopLagMonitor
from gateway.mllp.sender import MllpSender, make_client_ssl_context
from gateway.outbox import Outbox
from gateway.outbox.lock import InstanceLock
from gateway.pipeline import Pipeline
from gateway.poller import LinkPoller, group_by_link
from gateway.sdnotify import Notifier
from gateway.supervisor import Supervisor

log = get_logger("pumpgw.daemon")


@dataclass
class Daemon:
    config: GatewayConfig
    supervisor: Supervisor
    outbox: Outbox
    pipeline: Pipeline
    alerts: GatewayAlerts = field(default_factory=GatewayAlerts)
    pollers: list[LinkPoller] = field(default_factory=list)
    senders: list[MllpSender] = field(default_factory=list)
    releases: ReleaseApplier | None = None  # signed drug-library releases ([library] trusted_keys)
    # how late the event loop runs (last_s, max_s, exceeded; on_sample for a metrics exporter)
    loop_lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)
    sources: list = field(default_factory=list)  # vendor-server listeners (gateway/sources)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    status_sources: StatusSources | None = None
    health_server: object | None = None  # gateway.health.server.HealthServer when enabled
    lock: InstanceLock | None = None

    def status(self) -> dict:
        """What the status page, /status.json and `pumpgw status` show (no patient data)."""
        assert self.status_sources is not None
        return snapshot(self.status_sources)

    async def run(self) -> None:
        await self.supervisor.run()


def build_daemon(
    config: GatewayConfig,
    *,
    notifier: Notifier | None = None,
    config_path: Path | None = None,
    audit: AuditHook | None = None,
) -> Daemon:
    """Build every component; ``config_path`` lets SIGHUP re-read the library path and pin.

    ``audit(kind, subject, detail, actor)`` receives drug-library applied/refused rows (the
    audit trail's append); by default they are logged at INFO.

    The outbox's instance lock is taken first and held until the process ends: a second
    daemon on the same outbox stops here (OutboxLocked names the holder's PID), and a missing
    outbox folder is an error rather than a new, empty outbox (OutboxPathError).
    """
    lock = InstanceLock.acquire(config.outbox.path)
    alerts = GatewayAlerts(publish=config.mqtt.enabled)
    try:
        _extend_start_timeout_for_upgrade(config.outbox.path, notifier)
        outbox = Outbox.open(
            config.outbox.path,
            max_bytes=config.outbox.max_bytes,
            delivered_retention_s=config.outbox.delivered_retention_s,
            on_alert=alerts.raise_alert,
            reserve_bytes=config.outbox.reserve_bytes,
        )
    except BaseException:
        lock.release()
        raise
    metrics = GatewayMetrics()  # one registry per daemon: no global state
    supervisor = Supervisor(shutdown_timeout_s=config.shutdown_timeout_s, notifier=notifier)
    supervisor.on_close("outbox lock", lock.release)  # closers run in reverse: after the outbox
    live = None
    if config.mqtt.enabled:
        from gateway.mqtt.outbox_queue import OutboxQueue
        from gateway.mqtt.publisher import MqttPublisher

        live = MqttPublisher(
            config.mqtt,
            site=config.gateway.site,
            gateway_id=config.gateway.gateway_id,
            queue=OutboxQueue(outbox),
            version=__version__,
            config_hash=config_hash(config),
            ward=config.gateway.ward,
            beds={p.id: p.location for p in config.pumps}
            | {d.id: d.location for src in config.sources for d in src.devices},
        )
        live.register_pumps(p.id for p in config.pumps)
        live.register_pumps(d.id for src in config.sources for d in src.devices)
        supervisor.add("mqtt", live.run, stopper=live.stop)
        supervisor.add("mqtt alerts", lambda: alerts.forward(live))
    # first: its audit trail is what drug-library changes are recorded with
    traceability = _traceability(config, supervisor, live, config_path)
    if audit is None:
        audit = traceability.trail.append
    releases = None
    if config.library is not None and config.library.trusted_keys:
        library, releases = build_signed_library(
            config, supervisor=supervisor, live=live, on_alert=alerts.raise_alert, config_path=config_path, audit=audit
        )
    else:
        library = _drug_library(config, supervisor, live, alerts, config_path, audit=audit)
    pipeline = Pipeline(
        config,
        outbox,
        control_ids=ControlIdGenerator(
            config.gateway.eui64, state_path=config.outbox.path.with_name(config.outbox.path.name + ".msh10")
        ),
        pcd01_interval_s=config.hl7.pcd01_interval_s,
        processing_id=config.hl7.processing_id,
        library=library,
        live=live,
        on_alert=alerts.raise_alert,
        trace=traceability.trace,
    )
    daemon = Daemon(config, supervisor, outbox, pipeline, alerts, releases=releases, metrics=metrics, lock=lock)
    supervisor.add("outbox maintenance", outbox.maintain)
    # After READY, on a worker thread: a full read of a large cold file takes minutes.
    supervisor.add("outbox integrity check", outbox.check_integrity)
    daemon.loop_lag.on_sample = metrics.loop_lag_sampled
    supervisor.add("loop lag", daemon.loop_lag.run)
    for key, pumps in group_by_link(config.pumps).items():
        poller = LinkPoller(
            key,
            pumps,
            pipeline,
            backoff_initial_s=config.polling.reconnect.initial_backoff_s,
            backoff_max_s=config.polling.reconnect.max_backoff_s,
            metrics=metrics,
            alert=alerts.raise_alert,
        )
        daemon.pollers.append(poller)
        supervisor.add(f"poll {key}", poller.run, progress=poller.progress, stale_after_s=poller.stale_after_s)
    for dest in config.destinations:
        ssl_context = (
            make_client_ssl_context(
                dest.tls.ca_file, dest.tls.cert_file, dest.tls.key_file, dest.tls.key_passphrase_file, dest.tls.crl_file
            )
            if dest.tls.enabled
            else None
        )
        for lane in lanes(dest):
            sender = MllpSender(
                outbox,
                lane=lane,
                host=dest.host,
                port=dest.port,
                ack_timeout_s=dest.ack_timeout_s,
                connect_timeout_s=dest.connect_timeout_s,
                initial_backoff_s=dest.retry.initial_backoff_s,
                max_backoff_s=dest.retry.max_backoff_s,
                ssl_context=ssl_context,
                server_hostname=dest.tls.server_hostname,
                metrics=metrics,
            )
            daemon.senders.append(sender)
            # progress() advances at every attempt; a stuck sender is one silent for longer
            # than a full backoff + connect + ACK wait.
            stale = dest.retry.max_backoff_s + dest.connect_timeout_s + dest.ack_timeout_s + 30
            supervisor.add(
                f"send {lane}", sender.run, progress=sender.progress, stale_after_s=stale, stopper=sender.stop
            )
    for source in config.sources:
        daemon.sources.append(_source(source, config, supervisor, pipeline, outbox))
    supervisor.on_close("outbox", outbox.aclose)  # waits for a group commit under way
    daemon.status_sources = StatusSources(
        config=config,
        version=__version__,
        outbox=outbox,
        pipeline=pipeline,
        pollers=daemon.pollers,
        senders=daemon.senders,
        supervisor=supervisor,
        alerts=alerts,
        library=library,
        mqtt=live,
    )
    metrics.observe(daemon.status)
    if config.health.enabled:
        _health_service(daemon)
    return daemon


UPGRADE_READ_BYTES_S = 20e6  # a slow SD card reading cold; the estimate errs long


def _extend_start_timeout_for_upgrade(path: Path, notifier: Notifier | None) -> None:
    """The one start-up step whose length grows with the outbox: a schema upgrade that reads
    every row once. Tell systemd honestly how long it may take (EXTEND_TIMEOUT_USEC) instead
    of letting TimeoutStartSec kill it and restart into the same upgrade. Everything else
    before READY is bounded (docs/operations.md, "Start-up time")."""
    from gateway.outbox import schema

    if not schema.migration_pending(path):
        return
    size = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    seconds = 60 + size / UPGRADE_READ_BYTES_S
    sender = notifier if notifier is not None else Notifier()
    sender.extend_timeout(seconds, status=f"upgrading the outbox file ({size >> 20} MiB, up to {seconds:.0f} s)")
    log.info("outbox schema upgrade before READY", bytes=size, extend_timeout_s=round(seconds))
    if notifier is None:
        sender.close()


def _source(source, config: GatewayConfig, supervisor: Supervisor, pipeline: Pipeline, outbox: Outbox):
    """A vendor-server source: its listener, and the pruning of its dedup records."""
    import asyncio

    from gateway.sources.handler import InboundHandler
    from gateway.sources.listener import SourceListener

    listener = SourceListener(
        source,
        InboundHandler(source, pipeline, outbox),
        application=f"PUMPGW_{config.gateway.gateway_id}",
        facility=config.gateway.site,
    )

    async def prune() -> None:
        while True:
            await outbox.forget_receipts(source.dedup_retention_s)
            await asyncio.sleep(3600)

    supervisor.add(f"source {source.name}", listener.run)
    supervisor.add(f"source {source.name} dedup pruning", prune)
    return listener


def _health_service(daemon: Daemon) -> None:
    from gateway.credentials import read_secret
    from gateway.health.server import HealthServer, build_app

    h = daemon.config.health
    app = build_app(
        daemon.status,
        daemon.metrics.render,
        username=h.username,
        password=read_secret(h.password_file) if h.password_file else "",
    )
    server = HealthServer(app, host=h.listen, port=h.port, cert_file=h.cert_file, key_file=h.key_file)
    daemon.health_server = server
    daemon.supervisor.add("health", server.run, stopper=server.stop)


def _traceability(config: GatewayConfig, supervisor: Supervisor, live, config_path: Path | None):
    """Audit trail + identity registry (gateway/identity/wiring.py); the inventory on MQTT."""
    from gateway.identity.wiring import TraceabilityParts, slot_fields

    def on_record(record) -> None:
        if live is not None:
            live.set_slot(record.pump_id, slot_fields(record))

    parts = TraceabilityParts(config, config_path=config_path, on_record=on_record)
    parts.start_up()
    for record in parts.registry.records([p.id for p in config.pumps]):
        on_record(record)
    supervisor.add("audit maintenance", parts.maintain)
    supervisor.on_reload("audit configuration", parts.on_sighup)
    supervisor.on_close("audit trail", parts.close)
    return parts


def config_hash(config: GatewayConfig) -> str:
    """A short fingerprint of the configuration in force (MQTT birth, start-up log)."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def _drug_library(
    config: GatewayConfig,
    supervisor: Supervisor,
    live,
    alerts: GatewayAlerts,
    config_path: Path | None,
    *,
    audit: AuditHook | None = None,
) -> LibraryHolder | None:
    """Load the pinned library and keep it current: file watch and SIGHUP both reload.

    A file that fails validation or the pin is refused, the previous library stays in force,
    and the refusal is logged at ERROR (the alert) -- the daemon keeps running either way;
    without any valid library it simply attaches no verdicts.
    """
    if config.library is None:
        return None

    assert config.library.path is not None  # the model requires path without trusted_keys
    holder = LibraryHolder(
        config.library.path, expected_sha256=config.library.sha256, on_alert=alerts.raise_alert, audit=audit
    )
    result = holder.reload()
    log.info("drug library", status=str(result.status), version=holder.current.version if holder.current else None)

    def publish_version() -> None:
        if live is not None:
            live.set_central_library_version(holder.current.version if holder.current else None)

    publish_version()

    async def reload() -> None:
        _repin(holder, config_path)
        result = await holder.reload_async()
        log.info(
            "drug library reload (SIGHUP)",
            status=str(result.status),
            version=holder.current.version if holder.current else None,
        )
        publish_version()

    async def watch() -> None:
        await holder.watch()

    supervisor.add("drug library watch", watch)
    supervisor.on_reload("drug library", reload)
    return holder


def _repin(holder: LibraryHolder, config_path: Path | None) -> None:
    """On SIGHUP, take the library path and SHA-256 pin from the configuration file as it is
    now, so a new library version is put in force by editing the pin and reloading. An invalid
    configuration file changes nothing (the running configuration stays)."""
    if config_path is None:
        return
    try:
        fresh = load_config(config_path)
    except ConfigError as exc:
        log.error("SIGHUP: configuration file is invalid; library pin unchanged", problems=exc.problems)
        return
    if fresh.library is not None and fresh.library.trusted_keys:
        log.error("SIGHUP: switching to signed releases (trusted_keys) needs a restart; library pin unchanged")
        return
    if (
        fresh.library is not None
        and fresh.library.path is not None
        and (fresh.library.path, fresh.library.sha256) != (holder.path, holder.expected_sha256)
    ):
        log.info(
            "SIGHUP: library pin from the configuration", path=str(fresh.library.path), sha256=fresh.library.sha256
        )
        holder.path, holder.expected_sha256 = fresh.library.path, fresh.library.sha256
