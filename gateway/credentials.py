"""Secrets from systemd credentials (``LoadCredential=``), files, and encrypted keys.

A secret path in the configuration (``mqtt.password_file``, ``tls.key_file``,
``tls.key_passphrase_file``) may be written ``credential:NAME``: it then names the file
``$CREDENTIALS_DIRECTORY/NAME`` that systemd prepares for the service from the unit's
``LoadCredential=NAME:/etc/pumpgw/secrets/NAME`` (or ``LoadCredentialEncrypted=``). The
directory is private to the service (mode 0500, on a non-swappable ramfs, unmounted when it
stops), so the secret is never readable by other users on the host, not even by the
service's own group, and it is not in the configuration or the environment (docs/security.md).

Read at every use (each reconnect), so a rotated secret is picked up without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gateway.errors import BadInput

CREDENTIAL_PREFIX = "credential:"
_MAX_SECRET_BYTES = 64 << 10  # a password or passphrase; never a whole file system


class CredentialError(BadInput):
    """A secret cannot be read: which one, where we looked, and why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"secret {name}: {reason}")


def is_credential(path: Path | str | None) -> bool:
    return path is not None and str(path).startswith(CREDENTIAL_PREFIX)


def resolve(path: Path | str, env: Mapping[str, str] | None = None) -> Path:
    """The file to read for ``path``: itself, or the systemd credential it names."""
    text = str(path)
    if not text.startswith(CREDENTIAL_PREFIX):
        return Path(path)
    name = text[len(CREDENTIAL_PREFIX) :]
    if not name or "/" in name or name in (".", ".."):
        raise CredentialError(text, "a credential name is a plain file name, e.g. credential:mqtt-password")
    env = os.environ if env is None else env
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise CredentialError(
            text,
            "$CREDENTIALS_DIRECTORY is not set: run under systemd with LoadCredential="
            f"{name}:/etc/pumpgw/secrets/{name} (see docs/security.md)",
        )
    return Path(directory) / name


def read_secret(path: Path | str, env: Mapping[str, str] | None = None) -> str:
    """A one-line secret (password, passphrase) without its line end; never empty."""
    file = resolve(path, env)
    try:
        with open(file, "rb") as fh:
            data = fh.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise CredentialError(str(path), f"cannot read {file}: {exc.strerror or exc}") from None
    if len(data) > _MAX_SECRET_BYTES:
        raise CredentialError(str(path), f"{file} is larger than {_MAX_SECRET_BYTES} bytes; not a password")
    try:
        secret = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise CredentialError(str(path), f"{file} is not UTF-8 text") from None
    if not secret:
        raise CredentialError(str(path), f"{file} is empty")
    return secret
