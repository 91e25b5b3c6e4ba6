"""The health listener for real: a daemon built from a configuration, its /healthz over TCP,
basic auth and TLS when bound off loopback (config refuses otherwise)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl

import pytest
import trustme

from gateway.config import load_config_text
from gateway.daemon import build_daemon
from gateway.errors import ConfigError
from gateway.health.server import HealthServer, build_app
from tests.ports import free_port


async def http_get(port: int, path: str, *, headers: str = "", tls: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def config_text(tmp_path, health: str, *, dest_port: int) -> str:
    return f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA01"
incomplete_reason = "test without pumps"
[outbox]
path = "{tmp_path / "outbox.sqlite"}"
[health]
{health}
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = {dest_port}
messages = ["pcd10"]
connect_timeout_s = 0.5
retry = {{ initial_backoff_s = 0.05, max_backoff_s = 0.1 }}
"""


def test_listening_off_loopback_without_tls_and_auth_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config_text(config_text(tmp_path, 'listen = "0.0.0.0"', dest_port=9))
    assert "health.listen" in str(err.value) and "needs TLS" in str(err.value)


async def test_healthz_is_not_ready_and_names_the_lane_when_the_destination_is_down(tmp_path):
    port = free_port()
    dead = free_port()  # nothing listens: every connect is refused
    config = load_config_text(config_text(tmp_path, f"port = {port}", dest_port=dead))
    daemon = build_daemon(config)
    runner = asyncio.create_task(daemon.supervisor.run(install_signal_handlers=False))
    try:
        await daemon.supervisor.wait_started()
        await asyncio.wait_for(daemon.health_server.listening.wait(), 10)
        # an event in the lane so the sender tries, fails and backs off
        await daemon.outbox.enqueue(lane="ehr", kind="pcd10", control_id="C1", payload=b"MSH|", ttl_s=60)
        while daemon.senders[0].state != "backoff":
            await asyncio.sleep(0.02)
        status, body = await http_get(port, "/healthz")
        health = json.loads(body)
        assert status == 503 and health["live"] is True and health["ready"] is False
        assert any(r.startswith("destination lane ehr is not delivering: cannot connect") for r in health["reasons"])
        status, body = await http_get(port, "/metrics")
        assert status == 200 and b'pumpgw_outbox_messages{lane="ehr",state="in_flight"} 1.0' in body
    finally:
        daemon.supervisor.request_stop()
        await runner


async def test_a_lane_retrying_its_connection_stays_not_ready_until_a_delivery_succeeds(tmp_path):
    """Between two retries the sender is "connecting", not in backoff: readiness must not flip
    to ready for that moment. A listener whose accept queue is full drops new SYNs, so every
    connect hangs until its timeout: the lane spends nearly all its time "connecting"."""
    port = free_port()
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue (never accepted)
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(blackhole.getsockname())
        fillers.append(filler)
    config = load_config_text(config_text(tmp_path, f"port = {port}", dest_port=blackhole.getsockname()[1]))
    daemon = build_daemon(config)
    runner = asyncio.create_task(daemon.supervisor.run(install_signal_handlers=False))
    try:
        await daemon.supervisor.wait_started()
        await asyncio.wait_for(daemon.health_server.listening.wait(), 10)
        await daemon.outbox.enqueue(lane="ehr", kind="pcd10", control_id="C1", payload=b"MSH|", ttl_s=60)
        sender = daemon.senders[0]
        while not sender.failing:
            await asyncio.sleep(0.02)
        seen = set()
        for _ in range(12):  # ~1.2 s: two connect attempts of 0.5 s and the backoff between them
            status, body = await http_get(port, "/healthz")
            seen.add(sender.state)
            assert status == 503, f"ready while the lane was {sender.state}: {body[:200]!r}"
            assert any("destination lane ehr is not delivering" in r for r in json.loads(body)["reasons"])
            await asyncio.sleep(0.1)
        assert "connecting" in seen  # the moment the old readiness got wrong was really observed
    finally:
        daemon.supervisor.request_stop()
        await runner
        for sock in (*fillers, blackhole):
            sock.close()


async def test_basic_auth_and_tls_protect_every_route(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    app = build_app(
        lambda: {"health": {"live": True, "ready": True, "reasons": []}},
        lambda: b"m 1\n",
        username="ops",
        password="s3cret",
    )
    port = free_port()
    server = HealthServer(
        app, host="127.0.0.1", port=port, cert_file=tmp_path / "server.pem", key_file=tmp_path / "server.pem"
    )
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.listening.wait(), 10)
        import logging

        assert logging.getLevelName(5) == "WIRE"  # uvicorn would rename the wire-trace level "TRACE"
        client = ssl.create_default_context()
        ca.configure_trust(client)
        for path in ("/healthz", "/metrics", "/", "/status.json"):
            status, _ = await http_get(port, path, tls=client)
            assert status == 401, path
        wrong = base64.b64encode(b"ops:guess").decode()
        assert (await http_get(port, "/healthz", headers=f"Authorization: Basic {wrong}\r\n", tls=client))[0] == 401
        right = base64.b64encode(b"ops:s3cret").decode()
        status, body = await http_get(port, "/healthz", headers=f"Authorization: Basic {right}\r\n", tls=client)
        assert status == 200 and json.loads(body)["ready"] is True
        with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
            await http_get(port, "/healthz", tls=ssl.create_default_context())
    finally:
        server.stop()
        await asyncio.wait_for(task, 10)
