"""What an MQTT session is opened with (:class:`ConnectSettings`), from ``[mqtt]`` configuration.

Read at every connection attempt, so a rotated password file or renewed client
certificate is picked up on the next reconnect without a restart. TLS is verified against
the configured CA (or the system's); hostname checking is always on and there is no
plaintext fallback (peers.md §3).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.config.model import MqttConfig, TlsConfig
from gateway.credentials import CredentialError, read_secret, resolve
from gateway.mqtt.errors import MqttSetupError


@dataclass(frozen=True, slots=True)
class Will:
    """The Last Will the broker publishes when the session dies without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class ConnectSettings:
    """Everything needed to open a session; built by :func:`connect_settings`."""

    host: str
    port: int
    client_id: str
    keepalive_s: int = 30
    username: str = ""
    password: str | None = None
    tls: ssl.SSLContext | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    connect_timeout_s: float = 10.0
    max_inflight: int = 20
    session_expiry_s: int = 0  # MQTT 5: how long the broker keeps the session (and its will)
    max_packet_bytes: int | None = None  # MQTT 5 Maximum Packet Size we accept (None: no limit)


def read_password(path: Path, *, host: str, port: int) -> str:
    try:
        return read_secret(path)
    except CredentialError as exc:
        raise MqttSetupError(f"mqtt.password_file: {exc}", host=host, port=port) from exc


class _PinnedNameContext(ssl.SSLContext):
    """An SSLContext that verifies a configured name instead of the host connected to.

    paho passes its host as ``server_hostname``; ``mqtt.tls.server_hostname`` overrides it
    (e.g. connecting by IP address to a broker whose certificate names its DNS name).
    """

    pinned_hostname: str = ""

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=self.pinned_hostname or server_hostname, **kwargs)


def tls_context(tls: TlsConfig, *, host: str, port: int) -> ssl.SSLContext:
    ctx = _PinnedNameContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.pinned_hostname = tls.server_hostname or ""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        if tls.ca_file is not None:
            ctx.load_verify_locations(cafile=str(resolve(tls.ca_file)))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if tls.crl_file is not None:  # revocation of the broker's certificate (leaf)
            ctx.load_verify_locations(cafile=str(resolve(tls.crl_file)))
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        if tls.cert_file is not None and tls.key_file is not None:
            passphrase = read_secret(tls.key_passphrase_file) if tls.key_passphrase_file is not None else None
            ctx.load_cert_chain(str(resolve(tls.cert_file)), str(resolve(tls.key_file)), password=passphrase)
    except CredentialError as exc:
        raise MqttSetupError(f"TLS secret unusable: {exc}", host=host, port=port) from exc
    except (OSError, ssl.SSLError) as exc:
        raise MqttSetupError(
            f"TLS files unusable ({tls.ca_file}, {tls.cert_file}): {exc}", host=host, port=port
        ) from exc
    return ctx


def connect_settings(cfg: MqttConfig, *, default_client_id: str) -> ConnectSettings:
    """Build the settings of one connection attempt; raises :class:`MqttSetupError`."""
    password = None
    if cfg.password_file is not None:
        password = read_password(cfg.password_file, host=cfg.host, port=cfg.port)
    return ConnectSettings(
        host=cfg.host,
        port=cfg.port,
        client_id=cfg.client_id or default_client_id,
        keepalive_s=cfg.keepalive_s,
        username=cfg.username,
        password=password,
        tls=tls_context(cfg.tls, host=cfg.host, port=cfg.port) if cfg.tls.enabled else None,
        protocol=cfg.protocol,
        connect_timeout_s=cfg.connect_timeout_s,
        max_inflight=cfg.max_inflight,
        session_expiry_s=cfg.session_expiry_s,
        max_packet_bytes=cfg.max_packet_bytes,
    )
