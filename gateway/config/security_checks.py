"""Security warnings of ``check-config`` (docs/security.md, "What check-config checks").

Each one is a configuration that works but that a hospital security review would flag:

* a secret file (MQTT password, TLS private key, key passphrase) that other users on the
  host can read -- or write;
* a password sent to an MQTT broker on another host in plain text (no TLS);
* an outbox where the systemd unit makes it volatile (``/tmp``, ``/var/tmp``: PrivateTmp
  gives the service its own, wiped at every restart; ``/run``, ``/dev/shm``: RAM) or
  read-only (``/etc``, ``/usr``: ReadOnlyPaths / ProtectSystem=strict) -- either loses queued
  patient data or stops the daemon;
* an outbox file that other users can read (it holds raw HL7 with patient identifiers).

Secrets given as ``credential:NAME`` are systemd credentials: private by construction,
so they are not checked here.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gateway.config.problems import KeyPath
from gateway.credentials import is_credential

if TYPE_CHECKING:
    from gateway.config.checks import Finding
    from gateway.config.model import GatewayConfig, TlsConfig

VOLATILE_DIRS = ("/tmp", "/var/tmp", "/run", "/dev/shm")
READ_ONLY_DIRS = ("/etc", "/usr", "/boot")


def security_findings(config: GatewayConfig) -> list[Finding]:
    from gateway.config.checks import Finding

    out: list[Finding] = []
    for key, path in _secret_files(config):
        problem = _exposed(path)
        if problem:
            out.append(
                Finding(
                    key,
                    f"{path} is {problem}: it holds a secret; chmod 0600 (or 0640 for the "
                    "service's group) or use a systemd credential (docs/security.md)",
                    "warning",
                )
            )
    mqtt = config.mqtt
    if mqtt.enabled and not mqtt.tls.enabled and (mqtt.username or mqtt.password_file) and not _loopback(mqtt.host):
        out.append(
            Finding(
                ("mqtt", "tls"),
                f"MQTT credentials go to {mqtt.host} in plain text: anyone on the "
                "network path can read the password; enable mqtt.tls",
                "warning",
            )
        )
    outbox = PurePosixPath(str(config.outbox.path))
    for roots, what in (
        (VOLATILE_DIRS, "volatile: the unit's PrivateTmp/RAM loses queued messages at a restart"),
        (
            READ_ONLY_DIRS,
            "read-only under the unit (ProtectSystem=strict, ReadOnlyPaths=/etc/pumpgw): the daemon cannot write it",
        ),
    ):
        if any(outbox == PurePosixPath(r) or PurePosixPath(r) in outbox.parents for r in roots):
            out.append(Finding(("outbox", "path"), f"{outbox} is {what}; use /var/lib/pumpgw/", "warning"))
    problem = _exposed(Path(config.outbox.path), secret=False)
    if problem:
        out.append(
            Finding(
                ("outbox", "path"),
                f"{config.outbox.path} is {problem}: it holds raw HL7 with "
                "patient data (the daemon tightens it to 0640 when it owns it)",
                "warning",
            )
        )
    return out


def _secret_files(config: GatewayConfig) -> list[tuple[KeyPath, Path]]:
    files: list[tuple[KeyPath, Path | None]] = []
    tls_sets: list[tuple[KeyPath, TlsConfig]] = [
        (("destinations", i, "tls"), d.tls) for i, d in enumerate(config.destinations)
    ]
    if config.mqtt.enabled:
        files.append((("mqtt", "password_file"), config.mqtt.password_file))
        tls_sets.append((("mqtt", "tls"), config.mqtt.tls))
    for prefix, tls in tls_sets:
        if tls.enabled:
            files += [(prefix + (name,), getattr(tls, name)) for name in ("key_file", "key_passphrase_file")]
    return [(k, p) for k, p in files if p is not None and not is_credential(p)]


def _exposed(path: Path, *, secret: bool = True) -> str:
    """'world-readable' / 'world-writable' / 'group-writable' (secrets) or '' when private enough."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return ""  # absent here: check-config already says so
    if mode & stat.S_IWOTH:
        return f"world-writable (mode {mode:04o})"
    if mode & stat.S_IROTH:
        return f"world-readable (mode {mode:04o})"
    if secret and mode & stat.S_IWGRP:
        return f"group-writable (mode {mode:04o})"
    return ""


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
