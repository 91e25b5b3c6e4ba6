"""Session-level behaviour against a real Mosquitto: Last Will, TLS, authentication."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
import trustme

from gateway.config.model import TlsConfig
from gateway.mqtt import MqttAuthError, MqttPublisher, MqttTlsError
from gateway.mqtt.connection import MqttConnection
from gateway.mqtt.settings import connect_settings
from tests.conftest import REPO
from tests.gateway.mqtt.conftest import mqtt_config, snapshot
from tests.gateway.mqtt.scratch_outbox import scratch_outbox
from tests.gateway.mqtt.test_publisher import BASE, make_publisher, run_with


def test_the_last_will_reports_offline_when_the_gateway_process_is_sigkilled(broker, subscribe, subprocess_env):
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gateway_proc.py")), broker.host, str(broker.port)],
        stdout=subprocess.PIPE,
        env=subprocess_env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        lines = iter(proc.stdout.readline, b"")
        assert any(line.strip() == b"READY" for line in lines)  # log lines come first
        sub = subscribe(broker, [f"{BASE}/status"])
        _, p, retained = sub.next()
        online = json.loads(p)
        assert retained and online["state"] == "online" and online["version"] == "9.9"
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        _, p, _ = sub.next(timeout=5)
        offline = json.loads(p)
        assert offline["state"] == "offline"
        assert offline["session"] == online["session"]  # consumers can pair will and birth
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def tls_broker(make_broker, tmp_path: Path, ca: trustme.CA, *, require_client_cert: bool):
    server = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    extra = [
        f"cafile {tmp_path / 'ca.pem'}",
        f"certfile {tmp_path / 'server.pem'}",
        f"keyfile {tmp_path / 'server.key'}",
    ]
    if require_client_cert:
        extra += ["require_certificate true"]
    return make_broker(extra)


def test_tls_with_a_test_ca_and_a_client_certificate_carries_retained_state(make_broker, tmp_path, ca):
    broker = tls_broker(make_broker, tmp_path, ca, require_client_cert=True)
    client = ca.issue_cert("pumpgw-gw1")
    client.cert_chain_pems[0].write_to_path(tmp_path / "client.pem")
    client.private_key_pem.write_to_path(tmp_path / "client.key")
    tls = TlsConfig(
        enabled=True,
        ca_file=tmp_path / "ca.pem",
        cert_file=tmp_path / "client.pem",
        key_file=tmp_path / "client.key",
        server_hostname="localhost",
    )
    q = scratch_outbox()
    pub = MqttPublisher(
        mqtt_config(broker, tls=tls), site="site1", gateway_id="gw1", outbox=q, version="1", config_hash="h"
    )

    async def body() -> None:
        pub.update_state(snapshot(rate="7.5"))
        await pub.wait_online()
        # Read it back over TLS with our own session, as a dashboard would.
        got: list[tuple[str, bytes]] = []
        conn = await MqttConnection.open(
            connect_settings(mqtt_config(broker, tls=tls), default_client_id="reader"),
            subscriptions=[f"{BASE}/pumps/+/state"],
            on_message=lambda t, p, r: got.append((t, p)),
        )
        try:
            async with asyncio.timeout(5):
                while not got:
                    await asyncio.sleep(0.02)
        finally:
            await conn.disconnect()
        assert json.loads(got[0][1])["channels"][0]["rate"]["value"] == "7.5"

    run_with(pub, body)


def test_tls_against_an_untrusted_server_certificate_fails_closed(make_broker, tmp_path, ca):
    broker = tls_broker(make_broker, tmp_path, ca, require_client_cert=False)
    trustme.CA().cert_pem.write_to_path(tmp_path / "other-ca.pem")
    cfg = mqtt_config(broker, tls=TlsConfig(enabled=True, ca_file=tmp_path / "other-ca.pem"))

    async def main() -> None:
        with pytest.raises(MqttTlsError, match="certificate"):
            await MqttConnection.open(connect_settings(cfg, default_client_id="x"))

    asyncio.run(main())


def test_tls_hostname_mismatch_is_refused(make_broker, tmp_path, ca):
    broker = tls_broker(make_broker, tmp_path, ca, require_client_cert=False)
    cfg = mqtt_config(
        broker, tls=TlsConfig(enabled=True, ca_file=tmp_path / "ca.pem", server_hostname="broker.example.org")
    )

    async def main() -> None:
        with pytest.raises(MqttTlsError):
            await MqttConnection.open(connect_settings(cfg, default_client_id="x"))

    asyncio.run(main())


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_refused_credentials_raise_a_clear_auth_error_retried_at_the_longest_backoff(make_broker, tmp_path, protocol):
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed: cannot make a broker password file")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pwfile), "gw1", "right-secret"], check=True, capture_output=True)
    pwfile.chmod(0o600)
    broker = make_broker([f"password_file {pwfile}", "allow_anonymous false"])
    secret = tmp_path / "mqtt.secret"
    secret.write_text("wrong-secret\n")
    q = scratch_outbox()
    pub = make_publisher(broker, q, username="gw1", password_file=secret, protocol=protocol)

    async def body() -> None:
        with structlog.testing.capture_logs() as logs:
            while pub.stats.auth_failures < 3:
                await asyncio.sleep(0.02)
        refused = [e for e in logs if e["event"] == "mqtt.connect_refused"]
        assert refused and all(e["log_level"] == "error" for e in refused)
        assert "authentication refused for user 'gw1'" in refused[0]["error"]
        assert all(e["retry_in_s"] == pub.config.retry.max_backoff_s for e in refused)
        assert pub.stats.last_error is not None and pub.stats.last_error.startswith(MqttAuthError.__name__)
        assert not pub.stats.connected
        secret.write_text("right-secret\n")  # fixed by the biomed; picked up on the next attempt
        await asyncio.wait_for(pub.wait_online(), 5)

    run_with(pub, body)
