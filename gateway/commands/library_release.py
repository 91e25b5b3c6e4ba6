"""``pumpgw library keygen|sign|verify|publish``: signed releases from the pharmacy's desk.

docs/drug-library.md walks through keys, release, rollback and recall. Exit codes: 0 done,
1 refused (bad signature, invalid library, broker refused), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.druglib.canonical import canonical_sha256
from gateway.druglib.errors import LibraryError
from gateway.druglib.load import load_library_bytes
from gateway.druglib.signing import (
    KeyFileError,
    SignatureError,
    generate_key,
    key_id_of,
    load_private_key,
    load_public_key,
    parse_signature_file,
    sign_library,
    verify_with,
)


def register(lsub: argparse._SubParsersAction) -> None:
    k = lsub.add_parser(
        "keygen",
        help="create a pharmacy signing key pair (Ed25519)",
        description=(
            "Create an Ed25519 key pair for signing drug-library releases: NAME.key (private, mode 0600; keep it "
            "offline) and NAME.pub (copy to every gateway); prints the key id to read aloud when handing it over."
        ),
    )
    k.add_argument("--name", required=True, help="file name stem, e.g. pharmacy-2027 (writes NAME.key, NAME.pub)")
    k.add_argument("--out", type=Path, default=Path("."), help="directory (default: current)")
    k.set_defaults(handler=_keygen)
    s = lsub.add_parser(
        "sign",
        help="sign a released library: writes LIBRARY.sig",
        description=(
            "Sign a released drug library with the pharmacy's private key; writes the signature beside it "
            "(FILE.sig) with the release serial and signing time."
        ),
    )
    s.add_argument("file", type=Path, help="released drug library JSON file")
    s.add_argument("--key", type=Path, required=True, help="private key file (NAME.key)")
    s.add_argument(
        "--serial",
        type=int,
        default=None,
        help="release serial, higher than every earlier release (default: UTC time YYYYMMDDhhmmss)",
    )
    s.add_argument("-o", "--output", type=Path, default=None, help="signature file (default: FILE.sig)")
    s.set_defaults(handler=_sign)
    v = lsub.add_parser(
        "verify",
        help="check a library's signature and content",
        description=(
            "Check a signed release as a gateway would: signature by one of the given public keys, key validity "
            "at the signing time, and the library's content. Exit 0 valid, 1 refused."
        ),
    )
    v.add_argument("file", type=Path, help="drug library JSON file")
    v.add_argument("--signature", type=Path, default=None, help="signature file (default: FILE.sig)")
    v.add_argument(
        "--pubkey",
        type=Path,
        action="append",
        default=[],
        required=True,
        help="trusted public key (repeat for several)",
    )
    v.set_defaults(handler=_verify)
    p = lsub.add_parser(
        "publish",
        help="publish a signed release, retained, on {prefix}/library/current",
        description=(
            "Publish a signed release (library and signature) retained on "
            "{prefix}/library/current, where every gateway trusting the key picks it up."
        ),
    )
    p.add_argument("file", type=Path, help="signed drug library JSON file")
    p.add_argument("--signature", type=Path, default=None, help="signature file (default: FILE.sig)")
    p.add_argument("--broker", required=True, help="HOST:PORT of the MQTT broker")
    p.add_argument("--prefix", default="pumpgw/v1", help="topic prefix (default pumpgw/v1, as [mqtt] topic_prefix)")
    p.add_argument("--username", default="", help="broker user name")
    p.add_argument("--password-file", type=Path, default=None, help="file holding the broker password")
    p.add_argument("--tls", action="store_true", help="connect with TLS (hostname verified)")
    p.add_argument("--ca-file", type=Path, default=None, help="CA bundle to verify the broker (default: system CAs)")
    p.add_argument("--cert-file", type=Path, default=None, help="client certificate (PEM) for mutual TLS")
    p.add_argument("--key-file", type=Path, default=None, help="private key of --cert-file")
    p.add_argument("--server-hostname", default=None, help="name to verify instead of the broker host")
    p.set_defaults(handler=_publish)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _keygen(args: argparse.Namespace) -> int:
    priv, pub, kid = generate_key()
    key_path, pub_path = args.out / f"{args.name}.key", args.out / f"{args.name}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            return _fail(f"{path} exists: refusing to overwrite a key")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(priv)
        pub_path.write_bytes(pub)
    except OSError as exc:
        return _fail(f"cannot write the key files: {exc}")
    print(f"private key {key_path}  (keep it offline; whoever holds it can release a library)")
    print(f"public key  {pub_path}  (copy to every gateway)")
    print(f"key id      {kid}")
    print("gateway.toml:")
    print(
        f'  [[library.trusted_keys]]\n  file = "{pub_path.name}"\n  key_id = "{kid}"\n'
        f'  valid_from = "{datetime.now(UTC).replace(microsecond=0).isoformat()}"'
    )
    return 0


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LibraryError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _sign(args: argparse.Namespace) -> int:
    try:
        key = load_private_key(args.key)
        data = _read(args.file, "library")
        loaded = load_library_bytes(data, path=args.file, require_released=True)
        serial = args.serial if args.serial is not None else int(datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
        sig = sign_library(data, key, version=loaded.version, released=loaded.library.released, serial=serial)
    except LibraryError as exc:
        return _fail(f"not signed: {exc}")
    out = args.output or Path(str(args.file) + ".sig")
    out.write_bytes(sig)
    _, digest = canonical_sha256(data)
    print(f"wrote {out}: version {loaded.version}, serial {serial}, key id {key_id_of(key.public_key())}")
    print(f"canonical sha256 {digest}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    sig_path = args.signature or Path(str(args.file) + ".sig")
    try:
        data = _read(args.file, "library")
        sig = parse_signature_file(_read(sig_path, "signature"), where=str(sig_path))
        keys = {key_id_of(k): k for k in (load_public_key(p) for p in args.pubkey)}
        key = keys.get(sig.metadata.signer_key_id)
        if key is None:
            raise SignatureError(
                str(sig_path), f"signed by key {sig.metadata.signer_key_id}, not one of {', '.join(sorted(keys))}"
            )
        canon, digest = canonical_sha256(data, where=str(args.file))
        verify_with(key, sig, canon, where=str(args.file))
        loaded = load_library_bytes(data, path=args.file, require_released=True)
        if loaded.version != sig.metadata.version or loaded.library.released != sig.metadata.released:
            raise SignatureError(str(args.file), "the signed metadata does not name this library's version/date")
    except (LibraryError, KeyFileError) as exc:
        return _fail(f"NOT verified: {exc}")
    m = sig.metadata
    print(f"{args.file}: signature OK")
    print(f"  version {m.version}, serial {m.serial}, released {m.released}, signed {m.signed_at.isoformat()}")
    print(f"  key id {m.signer_key_id}; canonical sha256 {digest}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from gateway.mqtt.library_payloads import encode_release

    sig_path = args.signature or Path(str(args.file) + ".sig")
    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        print(f"--broker {args.broker!r}: expected HOST:PORT", file=sys.stderr)
        return 2
    try:
        data, signature = _read(args.file, "library"), _read(sig_path, "signature")
        sig = parse_signature_file(signature, where=str(sig_path))
        _, digest = canonical_sha256(data, where=str(args.file))
        if digest != sig.metadata.library_sha256:
            raise SignatureError(str(sig_path), "is not the signature of this library (SHA-256 differs)")
    except LibraryError as exc:
        return _fail(f"not published: {exc}")
    payload = encode_release(data, signature, published_at=datetime.now(UTC).replace(microsecond=0))
    topic = f"{args.prefix}/library/current"
    try:
        asyncio.run(_send(args, host, int(port), topic, payload))
    except Exception as exc:  # MqttError and friends: one line, no traceback
        return _fail(f"not published: {exc}")
    print(f"published {sig.metadata.version} (serial {sig.metadata.serial}, {len(payload)} bytes) retained on {topic}")
    return 0


async def _send(args: argparse.Namespace, host: str, port: int, topic: str, payload: bytes) -> None:
    from gateway.config.model import MqttConfig, TlsConfig
    from gateway.mqtt.connection import MqttConnection
    from gateway.mqtt.settings import connect_settings

    cfg = MqttConfig(
        enabled=True,
        host=host,
        port=port,
        username=args.username,
        password_file=args.password_file,
        tls=TlsConfig(
            enabled=args.tls,
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            server_hostname=args.server_hostname,
        ),
    )
    conn = await MqttConnection.open(connect_settings(cfg, default_client_id=f"pumpgw-library-publish-{os.getpid()}"))
    try:
        await asyncio.wait_for(conn.publish(topic, payload, qos=1, retain=True), timeout=30)
    finally:
        await conn.disconnect()
