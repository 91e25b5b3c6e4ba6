"""Assemble signed-release distribution for the daemon (called from gateway/daemon.py).

Composition, not drug-library logic: it joins the library to the configuration, the
supervisor and the MQTT feed, so it sits beside the daemon rather than in ``gateway.druglib``
(which imports no transport; tests/test_import_rules.py).

With ``[library] trusted_keys`` the gateway trusts keys, not files: the library in force comes
from the stored release (restart), the configured ``path`` (with ``path.sig``), the drop
folder and the MQTT topic ``{prefix}/library/current`` -- whichever brings the newest release
that verifies. SIGHUP re-reads the configuration: trust list (rotation, revocation),
``allow_downgrade`` and the pin.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from gateway.config import load_config
from gateway.config.model import GatewayConfig, LibraryConfig
from gateway.druglib.dropdir import DropFolder
from gateway.druglib.errors import LibraryError, LibraryUnreadable
from gateway.druglib.holder import ALERT_REFUSED, AlertHook, LibraryHolder
from gateway.druglib.releases import AuditHook, InForce, ReleaseApplier, log_audit
from gateway.druglib.state import ReleaseState
from gateway.druglib.trust import TrustList
from gateway.errors import ConfigError

log = structlog.get_logger("pumpgw.druglib")


def build_signed_library(
    config: GatewayConfig,
    *,
    supervisor,  # gateway.supervisor.Supervisor (not imported: it imports the daemon's world)
    live,  # gateway.mqtt.publisher.MqttPublisher | None
    on_alert: AlertHook,
    config_path: Path | None,
    audit: AuditHook | None = None,
) -> tuple[LibraryHolder, ReleaseApplier]:
    lib = config.library
    assert lib is not None and lib.trusted_keys
    holder = LibraryHolder(lib.path or Path("(signed releases)"), on_alert=on_alert)
    reporters: list[Callable[[InForce], None]] = []

    def changed(in_force: InForce) -> None:
        for report in reporters:
            report(in_force)

    applier = ReleaseApplier(
        trust=_trust(lib, on_alert),
        state=ReleaseState(config.outbox.path),
        holder=holder,
        audit=audit or log_audit,
        on_alert=on_alert,
        on_change=changed,
        allow_downgrade=lib.allow_downgrade,
        expected_sha256=lib.sha256,
        max_bytes=lib.max_release_bytes,
    )
    if live is not None:
        from gateway.mqtt.library_feed import LibraryFeed, report_in_force

        reporters.append(lambda f: live.set_central_library_version(f.version))
        reporters.append(lambda f: report_in_force(live, f))
        if lib.from_mqtt:
            supervisor.add("drug library feed", LibraryFeed(live, applier, max_bytes=lib.max_release_bytes).run)
    applier.restore()
    _offer_file(applier, lib)
    if lib.watch_dir is not None:
        supervisor.add("drug library folder", DropFolder(lib.watch_dir, applier, max_bytes=lib.max_release_bytes).run)

    async def reload() -> None:
        fresh = lib
        if config_path is not None:
            try:
                loaded = load_config(config_path)
            except ConfigError as exc:
                log.error("SIGHUP: configuration file is invalid; trust list unchanged", problems=exc.problems)
                return
            if loaded.library is not None and loaded.library.trusted_keys:
                fresh = loaded.library
        applier.update_trust(
            _trust(fresh, on_alert), allow_downgrade=fresh.allow_downgrade, expected_sha256=fresh.sha256
        )
        log.info(
            "SIGHUP: drug library trust list reloaded",
            keys=sorted(applier.trust.keys),
            allow_downgrade=fresh.allow_downgrade,
        )
        _offer_file(applier, fresh)

    supervisor.on_reload("drug library", reload)
    supervisor.on_close("drug library state", applier.state.close)
    log.info(
        "drug library",
        mode="signed releases",
        trusted_keys=sorted(applier.trust.keys),
        version=applier.in_force.version if applier.in_force else None,
    )
    return holder, applier


def _trust(lib: LibraryConfig, on_alert: AlertHook) -> TrustList:
    trust = TrustList.from_config(lib.trusted_keys)
    for problem in trust.problems:
        log.error("trusted key unusable: releases signed by it are refused", error=str(problem))
        on_alert(ALERT_REFUSED, {"reason": type(problem).__name__, "message": str(problem)})
    return trust


def _offer_file(applier: ReleaseApplier, lib: LibraryConfig) -> None:
    """The configured ``path`` (and ``path.sig``), if any: offered at start and on SIGHUP."""
    if lib.path is None:
        return
    try:
        library = lib.path.read_bytes()
        signature = Path(str(lib.path) + ".sig").read_bytes()
    except OSError as exc:
        error: LibraryError = LibraryUnreadable(
            str(lib.path), f"cannot read the library or its .sig: {exc.strerror or exc}"
        )
        applier.refuse(error, source="file", where=str(lib.path), digest=f"unreadable:{lib.path}")
        return
    applier.offer(library, signature, source="file", where=str(lib.path))
