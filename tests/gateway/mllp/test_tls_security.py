"""Mutual TLS towards an HL7 receiver: a refused client certificate is said clearly (ERROR, not
only DEBUG), and an encrypted client key opens with its passphrase from a systemd credential."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import ssl

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from gateway.log import configure_logging
from gateway.mllp.errors import TlsConfigError
from gateway.mllp.sender import MllpSender, make_client_ssl_context
from gateway.outbox import Outbox
from simulators.ehr import EhrReceiver

FAST = dict(ack_timeout_s=1.0, connect_timeout_s=1.0, initial_backoff_s=0.01, max_backoff_s=0.05)
HL7 = b"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|C1|P|2.6\rOBX|1|ST|x||1\r"


@pytest.fixture
def captured():
    stream = io.StringIO()
    yield stream
    logging.getLogger().handlers.clear()
    logging.getLogger().setLevel(logging.WARNING)


def mtls_receiver(ca: trustme.CA) -> EhrReceiver:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return EhrReceiver(ssl_context=ctx)


@contextlib.asynccontextmanager
async def running(sender: MllpSender):
    task = asyncio.create_task(sender.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def closed_before_the_ack(captured) -> list[dict]:
    """The sender's "not accepted" lines for a receiver that closed the connection."""
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    return [
        r for r in lines if "not accepted" in r["event"] and r["error"].startswith("receiver closed the connection")
    ]


@pytest.mark.parametrize("client", ["no certificate", "certificate of another CA"])
async def test_a_refused_client_certificate_is_logged_at_error_once_per_streak(tmp_path, captured, client):
    configure_logging(level="debug", fmt="json", stream=captured)
    ca = trustme.CA()
    rx = mtls_receiver(ca)
    port = await rx.start()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert = key = None
    if client != "no certificate":
        leaf = trustme.CA().issue_cert("pumpgw-gw1")
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "c.key"))
        cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    outbox = Outbox.open(tmp_path / "o.db")
    await outbox.enqueue(lane="doc", kind="pcd01", control_id="C1", payload=HL7, ttl_s=60)
    sender = MllpSender(
        outbox,
        lane="doc",
        host="127.0.0.1",
        port=port,
        server_hostname="localhost",
        ssl_context=make_client_ssl_context(tmp_path / "ca.pem", cert, key),
        **FAST,
    )
    async with running(sender):
        async with asyncio.timeout(20):  # several attempts of one streak
            while len(closed_before_the_ack(captured)) < 5:
                await asyncio.sleep(0.01)
    outbox.close()
    await rx.stop()
    errors = [json.loads(line) for line in captured.getvalue().splitlines() if '"level": "error"' in line]
    refused = [e for e in errors if "refused our client certificate" in e["event"]]
    assert len(refused) == 1 and refused[0]["logger"] == "pumpgw.mllp"
    assert rx.received == []


async def test_an_encrypted_client_key_opens_with_its_passphrase_credential_and_delivers(tmp_path, monkeypatch):
    ca = trustme.CA()
    rx = mtls_receiver(ca)
    port = await rx.start()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf = ca.issue_cert("pumpgw-gw1")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    (creds / "hl7-key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw 1"),
        )
    )
    (creds / "hl7-key-passphrase").write_text("pw 1\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    ctx = make_client_ssl_context(
        tmp_path / "ca.pem", tmp_path / "c.pem", "credential:hl7-key", "credential:hl7-key-passphrase"
    )
    outbox = Outbox.open(tmp_path / "o.db")
    await outbox.enqueue(lane="doc", kind="pcd01", control_id="C1", payload=HL7, ttl_s=60)
    async with running(
        MllpSender(
            outbox, lane="doc", host="127.0.0.1", port=port, server_hostname="localhost", ssl_context=ctx, **FAST
        )
    ):
        async with asyncio.timeout(20):
            while outbox.stats()["doc"].delivered < 1:
                await asyncio.sleep(0.01)
    assert [r.control_id for r in rx.received] == ["C1"]
    outbox.close()
    await rx.stop()
    (creds / "hl7-key-passphrase").write_text("wrong\n")
    with pytest.raises(TlsConfigError, match="cannot load client certificate/key"):
        make_client_ssl_context(
            tmp_path / "ca.pem", tmp_path / "c.pem", "credential:hl7-key", "credential:hl7-key-passphrase"
        )


def write_crl(ca: trustme.CA, path, revoked_serials: list[int]) -> None:
    """A CRL signed by ``ca`` (what the site distributes), valid for a day."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + dt.timedelta(days=1))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize("revoked", [False, True])
async def test_a_receiver_certificate_on_the_sites_crl_is_refused(tmp_path, captured, revoked):
    from cryptography import x509

    configure_logging(level="info", fmt="json", stream=captured)
    ca = trustme.CA()
    server = ca.issue_cert("localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(ctx)
    rx = EhrReceiver(ssl_context=ctx)
    port = await rx.start()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    serial = x509.load_pem_x509_certificate(server.cert_chain_pems[0].bytes()).serial_number
    write_crl(ca, tmp_path / "crl.pem", [serial] if revoked else [serial + 1])
    outbox = Outbox.open(tmp_path / "o.db")
    await outbox.enqueue(lane="doc", kind="pcd01", control_id="C1", payload=HL7, ttl_s=60)
    sender = MllpSender(
        outbox,
        lane="doc",
        host="127.0.0.1",
        port=port,
        server_hostname="localhost",
        ssl_context=make_client_ssl_context(tmp_path / "ca.pem", crl_file=tmp_path / "crl.pem"),
        **FAST,
    )
    async with running(sender):
        async with asyncio.timeout(20):
            while not (outbox.stats()["doc"].delivered or "TLS handshake failed" in captured.getvalue()):
                await asyncio.sleep(0.01)
    outbox.close()
    await rx.stop()
    if revoked:
        assert "certificate revoked" in captured.getvalue() and rx.received == []
    else:
        assert [r.control_id for r in rx.received] == ["C1"]
