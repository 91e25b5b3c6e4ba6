"""Secrets through systemd credentials: the daemon's loading reads $CREDENTIALS_DIRECTORY, and
an encrypted client key opens with its passphrase credential -- against a real Mosquitto that
requires both a password and a client certificate."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from gateway.config import load_config
from gateway.mqtt import MqttSetupError
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.settings import connect_settings

TOML = """\
[gateway]
site = "site1"
ward = "icu-3"
gateway_id = "gw1"
eui64 = "0011223344556677"
[[pumps]]
id = "bed01"
protocol = "alaris"
link = {{ type = "serial", url = "/dev/null" }}
[outbox]
path = "outbox.sqlite"
[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
username = "gw1"
password_file = "credential:mqtt-password"
tls = {{ enabled = true, ca_file = "{ca}", cert_file = "{cert}", key_file = "credential:mqtt-key", key_passphrase_file = "credential:mqtt-key-passphrase", server_hostname = "localhost" }}
"""


def encrypted_key(leaf: trustme.LeafCert, passphrase: bytes) -> bytes:
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    )


@pytest.fixture
def secured_broker(make_broker, tmp_path):
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pwfile), "gw1", "from-the-credential"], check=True, capture_output=True)
    pwfile.chmod(0o600)
    broker = make_broker(
        [
            f"cafile {tmp_path / 'ca.pem'}",
            f"certfile {tmp_path / 'server.pem'}",
            f"keyfile {tmp_path / 'server.key'}",
            "require_certificate true",
            f"password_file {pwfile}",
            "allow_anonymous false",
        ]
    )
    return broker, ca


def write_credentials(tmp_path, ca: trustme.CA):
    client = ca.issue_cert("pumpgw-gw1")
    client.cert_chain_pems[0].write_to_path(tmp_path / "client.pem")
    creds = tmp_path / "credentials"  # what systemd prepares from LoadCredential=
    creds.mkdir(mode=0o700)
    (creds / "mqtt-password").write_text("from-the-credential\n")
    (creds / "mqtt-key").write_bytes(encrypted_key(client, b"correct horse"))
    (creds / "mqtt-key-passphrase").write_text("correct horse\n")
    return creds


def test_the_daemon_reads_password_and_encrypted_key_passphrase_from_credentials_directory(
    secured_broker, tmp_path, monkeypatch
):
    broker, ca = secured_broker
    creds = write_credentials(tmp_path, ca)
    cfg_file = tmp_path / "gw.toml"
    cfg_file.write_text(TOML.format(port=broker.port, ca=tmp_path / "ca.pem", cert=tmp_path / "client.pem"))
    config = load_config(cfg_file)
    assert str(config.mqtt.password_file) == "credential:mqtt-password"  # not resolved against the file's folder
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))

    async def main() -> None:
        settings = connect_settings(config.mqtt, default_client_id="gw1")
        assert settings.password == "from-the-credential"
        got: list[bytes] = []
        conn = await MqttConnection.open(settings, subscriptions=["t/#"], on_message=lambda t, p, r: got.append(p))
        try:
            await conn.publish("t/x", b'{"ok": 1}', qos=1)
            async with asyncio.timeout(5):
                while not got:
                    await asyncio.sleep(0.02)
        finally:
            await conn.disconnect()
        assert json.loads(got[0]) == {"ok": 1}

    asyncio.run(main())


def test_without_credentials_directory_the_error_names_the_credential_and_the_unit_setting(tmp_path, monkeypatch):
    cfg_file = tmp_path / "gw.toml"
    cfg_file.write_text(TOML.format(port=1883, ca=tmp_path / "ca.pem", cert=tmp_path / "client.pem"))
    config = load_config(cfg_file)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(MqttSetupError, match=r"credential:mqtt-password.*LoadCredential=mqtt-password"):
        connect_settings(config.mqtt, default_client_id="gw1")


def test_a_wrong_passphrase_is_a_setup_error_not_a_traceback(secured_broker, tmp_path, monkeypatch):
    broker, ca = secured_broker
    creds = write_credentials(tmp_path, ca)
    (creds / "mqtt-key-passphrase").write_text("wrong\n")
    cfg_file = tmp_path / "gw.toml"
    cfg_file.write_text(TOML.format(port=broker.port, ca=tmp_path / "ca.pem", cert=tmp_path / "client.pem"))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    with pytest.raises(MqttSetupError, match="TLS files unusable"):
        connect_settings(load_config(cfg_file).mqtt, default_client_id="gw1")


def test_a_broker_certificate_on_the_sites_crl_is_refused(secured_broker, tmp_path, monkeypatch):
    from cryptography import x509

    from gateway.mqtt import MqttTlsError
    from tests.gateway.mllp.test_tls_security import write_crl

    broker, ca = secured_broker
    creds = write_credentials(tmp_path, ca)
    serial = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes()).serial_number
    write_crl(ca, tmp_path / "crl.pem", [serial])
    cfg_file = tmp_path / "gw.toml"
    cfg_file.write_text(
        TOML.format(port=broker.port, ca=tmp_path / "ca.pem", cert=tmp_path / "client.pem").replace(
            'server_hostname = "localhost"', f'server_hostname = "localhost", crl_file = "{tmp_path / "crl.pem"}"'
        )
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = connect_settings(load_config(cfg_file).mqtt, default_client_id="gw1")

    async def main() -> None:
        with pytest.raises(MqttTlsError, match="revoked"):
            await MqttConnection.open(settings)

    asyncio.run(main())
