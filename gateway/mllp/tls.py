"""The MLLP sender's TLS client context: the receiver's certificate and host name always
checked, optional mutual TLS, never a fallback to plaintext."""

from __future__ import annotations

import ssl
from pathlib import Path

from gateway.credentials import CredentialError, read_secret, resolve
from gateway.mllp.errors import TlsConfigError


def make_client_ssl_context(
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    key_passphrase_file: str | Path | None = None,
    crl_file: str | Path | None = None,
) -> ssl.SSLContext:
    """A verifying client context (server certificate and host name always checked).

    ``ca_file`` None means the system CAs; ``cert_file``/``key_file`` add a client
    certificate for mutual TLS, the key possibly encrypted with the passphrase in
    ``key_passphrase_file``. Any path may be ``credential:NAME`` (a systemd credential,
    :mod:`gateway.credentials`). Unreadable files raise :class:`TlsConfigError`.
    """
    try:
        ca_file = resolve(ca_file) if ca_file else None
        cert_file = resolve(cert_file) if cert_file else None
        key_file = resolve(key_file) if key_file else None
        passphrase = read_secret(key_passphrase_file) if key_passphrase_file else None
    except CredentialError as exc:
        raise TlsConfigError(exc.name, exc.reason) from None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(str(ca_file), f"cannot load CA bundle: {getattr(exc, 'strerror', None) or exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if crl_file:  # the receiver's certificate is checked against the site's CRL (leaf)
        try:
            ctx.load_verify_locations(cafile=str(resolve(crl_file)))
        except (OSError, ssl.SSLError, CredentialError) as exc:
            raise TlsConfigError(str(crl_file), f"cannot load CRL: {exc}") from None
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if (cert_file is None) != (key_file is None):
        raise TlsConfigError(str(cert_file or key_file), "cert_file and key_file must be given together")
    if cert_file is not None:
        try:
            ctx.load_cert_chain(str(cert_file), str(key_file), password=passphrase)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(
                str(cert_file), f"cannot load client certificate/key: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    return ctx
