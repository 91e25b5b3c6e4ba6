"""Host checks: what ``check-config`` and ``run`` both verify before anything starts.

``check-config`` is systemd's ``ExecStartPre`` gate, so it must refuse exactly what ``run``
would refuse: a drug library that fails its pin or its schema, a TLS or secret file that does
not load, an outbox folder the daemon cannot write, a configuration with no pump or no
destination and no stated reason. ``run`` calls :func:`preflight` too -- one list of checks,
so what passes one passes the other.

Serial devices are the exception: a USB adapter that is unplugged now may be back in a
minute and the poller retries, so an absent device is a warning (stated as such).

Each check is a function ``(config) -> Iterable[Finding]`` in :data:`HOST_CHECKS`; a new
check is one more entry (the security review adds its warnings that way).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gateway.config.checks import PLACEHOLDER_URLS, Finding
from gateway.config.load import ConfigReport
from gateway.config.model import GatewayConfig, TlsConfig
from gateway.config.problems import ConfigProblem, KeyPath

Check = Callable[[GatewayConfig], Iterable[Finding]]


def structure(config: GatewayConfig) -> Iterator[Finding]:
    """A gateway with no pump or no destination does nothing useful, unless that is the point."""
    if config.gateway.incomplete_reason.strip():
        return
    if not config.pumps and not config.sources:  # a vendor-server source brings its own pumps
        yield Finding(
            ("pumps",),
            "no [[pumps]] and no [[sources]]: nothing is monitored (set "
            "gateway.incomplete_reason to say why, e.g. while draining the outbox)",
        )
    if not config.destinations:
        yield Finding(
            ("destinations",),
            "no [[destinations]]: nothing reaches the patient record (set gateway.incomplete_reason to say why)",
        )


def library(config: GatewayConfig) -> Iterator[Finding]:
    """The library file loads, passes its schema and matches the pin -- or the daemon would run
    without verdicts. With trusted keys (signed releases): every key file loads, and a
    configured file must carry a signature (FILE.sig) from one of them."""
    lib = config.library
    if lib is None:
        return
    from gateway.druglib.errors import LibraryError, LibraryInvalid
    from gateway.druglib.load import load_library_bytes

    trust = None
    if lib.trusted_keys:
        from gateway.druglib.trust import TrustList

        trust = TrustList.from_config(lib.trusted_keys)
        for problem in trust.problems:
            yield Finding(("library", "trusted_keys"), f"trusted key unusable: {problem}")
    if lib.path is None:
        return
    try:
        data = lib.path.read_bytes()
    except OSError as exc:
        yield Finding(("library", "path"), f"{lib.path}: cannot read file: {exc.strerror or exc}")
        return
    try:
        if trust is not None:
            from datetime import UTC, datetime

            try:
                signature = Path(str(lib.path) + ".sig").read_bytes()
            except OSError as exc:
                yield Finding(("library", "path"), f"{lib.path}.sig: cannot read the signature: {exc.strerror or exc}")
                return
            trust.verify(data, signature, where=str(lib.path), now=datetime.now(UTC))
        load_library_bytes(data, path=lib.path, expected_sha256=lib.sha256)
    except LibraryInvalid as exc:
        shown = "; ".join(str(p) for p in exc.problems[:5])
        more = f" (and {len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
        yield Finding(
            ("library", "path"),
            f"{lib.path} is not a valid drug library: {shown}{more} (details: pumpgw library check {lib.path})",
        )
    except LibraryError as exc:
        yield Finding(("library", "sha256") if "pin mismatch" in str(exc) else ("library", "path"), str(exc))


def tls_and_secrets(config: GatewayConfig) -> Iterator[Finding]:
    """Every certificate, key, CA bundle and password file the daemon will read loads now."""
    from gateway.credentials import CredentialError
    from gateway.mllp.errors import TlsConfigError
    from gateway.mllp.sender import make_client_ssl_context

    client_tls: list[tuple[KeyPath, TlsConfig]] = [
        (("destinations", i, "tls"), d.tls) for i, d in enumerate(config.destinations)
    ]
    if config.mqtt.enabled:
        client_tls.append((("mqtt", "tls"), config.mqtt.tls))
        if config.mqtt.password_file is not None:
            yield from _readable(("mqtt", "password_file"), config.mqtt.password_file)
    for key, tls in client_tls:
        if not tls.enabled:
            continue
        if _credentials_unavailable(tls.ca_file, tls.cert_file, tls.key_file, tls.key_passphrase_file, tls.crl_file):
            yield _credential_warning(key)
            continue
        try:
            make_client_ssl_context(tls.ca_file, tls.cert_file, tls.key_file, tls.key_passphrase_file, tls.crl_file)
        except (TlsConfigError, CredentialError) as exc:
            yield Finding(key, str(exc))
    health = config.health
    if health.enabled and health.cert_file is not None and health.key_file is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(health.cert_file, health.key_file)
        except (OSError, ssl.SSLError) as exc:
            yield Finding(
                ("health", "cert_file"),
                f"cannot load server certificate/key {health.cert_file}: {getattr(exc, 'strerror', None) or exc}",
            )
    if health.enabled and health.password_file is not None:
        yield from _readable(("health", "password_file"), health.password_file)


def serial_devices(config: GatewayConfig) -> Iterator[Finding]:
    """Local serial devices exist (a warning: USB adapters come and go, the poller retries)."""
    for index, pump in enumerate(config.pumps):
        link = pump.link
        if link.type != "serial" or "://" in link.url or link.url in PLACEHOLDER_URLS:
            continue
        if not Path(link.url).exists():
            yield Finding(
                ("pumps", index, "link", "url"),
                f"serial device {link.url} of pump {pump.id!r} is absent "
                "now (a warning, not an error: a USB adapter may be plugged in later; the poller "
                "keeps trying and reports the pump communication-lost meanwhile)",
                "warning",
            )


def outbox(config: GatewayConfig) -> Iterator[Finding]:
    """The outbox folder exists and the daemon can write there (never created implicitly)."""
    path = config.outbox.path
    folder = path.parent
    if not folder.is_dir():
        yield Finding(
            ("outbox", "path"),
            f"folder {folder} does not exist (pumpgw does not create it, so a typo "
            "cannot start a new, empty outbox; under systemd StateDirectory=pumpgw creates /var/lib/pumpgw)",
        )
        return
    if not os.access(folder, os.W_OK | os.X_OK):
        yield Finding(("outbox", "path"), f"folder {folder} is not writable by this user ({_user()})")
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + ".lock")):
        if candidate.exists() and not os.access(candidate, os.R_OK | os.W_OK):
            yield Finding(("outbox", "path"), f"{candidate} is not readable and writable by this user ({_user()})")
        elif candidate.exists() and not candidate.is_file():
            yield Finding(("outbox", "path"), f"{candidate} is not a regular file")


HOST_CHECKS: list[Check] = [structure, library, tls_and_secrets, serial_devices, outbox]


def preflight(config: GatewayConfig) -> list[Finding]:
    """Run every host check; errors and warnings, in check order."""
    return [finding for check in HOST_CHECKS for finding in check(config)]


def _readable(key: KeyPath, path: Path) -> Iterator[Finding]:
    """A password file (or ``credential:NAME``) reads as a one-line secret."""
    from gateway.credentials import CredentialError, read_secret

    if _credentials_unavailable(path):
        yield _credential_warning(key)
        return
    try:
        read_secret(path)
    except CredentialError as exc:
        yield Finding(key, str(exc))


def _credentials_unavailable(*paths: Path | None) -> bool:
    """``credential:NAME`` paths exist only under systemd (LoadCredential=, $CREDENTIALS_DIRECTORY):
    the unit's ExecStartPre checks them; an operator's shell cannot."""
    from gateway.credentials import is_credential

    return any(is_credential(p) for p in paths) and not os.environ.get("CREDENTIALS_DIRECTORY")


def _credential_warning(key: KeyPath) -> Finding:
    return Finding(
        key,
        "uses systemd credentials (credential:NAME), which only the service sees; not checked "
        "here (the unit's ExecStartPre checks them)",
        "warning",
    )


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return f"uid {os.geteuid()}"


def gate(report: ConfigReport, *, host_checks: bool = True) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    """(errors, warnings) of a loaded configuration: the loader's warnings plus the host checks,
    each with the line of its key. ``check-config`` and ``run`` both decide on this."""
    errors: list[ConfigProblem] = []
    warnings = list(report.warnings)
    if host_checks:
        for finding in preflight(report.config):
            problem = report.problem(finding.key, finding.message, finding.severity)
            (errors if finding.severity == "error" else warnings).append(problem)
    return errors, warnings
