"""Safety at the boundary: TLS with no plaintext fallback, mutual TLS with certificate names,
address allowlist, bounded frames, idle timeout, connection limit, bind address."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from gateway.config.load import load_config_text
from gateway.config.model import SourceConfig
from gateway.errors import ConfigError
from simulators.vendor_server.client import VendorServer
from simulators.vendor_server.messages import VERDICT_PROGRAMS
from tests.gateway.sources.conftest import running_gateway

P = VERDICT_PROGRAMS["within_limits"]


def tls_files(tmp_path, ca: trustme.CA):
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    return tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"


def client_context(ca: trustme.CA, name: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(ctx)
    if name is not None:
        ca.issue_cert(name).configure_cert(ctx)
    return ctx


async def test_tls_source_serves_tls_and_refuses_plaintext(tmp_path):
    ca = trustme.CA()
    cert, key, _ = tls_files(tmp_path, ca)
    tls = f'tls = {{ enabled = true, cert_file = "{cert}", key_file = "{key}" }}'
    async with running_gateway(tmp_path, source=tls) as gw:
        sim = VendorServer("127.0.0.1", gw.port, ssl_context=client_context(ca), server_hostname="127.0.0.1")
        assert (await sim.pcd01(P)).codes == ["CA"]
        await sim.close()
        plain = VendorServer("127.0.0.1", gw.port, ack_timeout_s=2)
        with pytest.raises(ConnectionError):
            await plain.send(b"MSH|^~\\&|X\r", "X", attempts=2)
        await plain.close()
        assert gw.handler.counters["received"] == 1


async def test_mutual_tls_requires_a_certificate_with_an_allowed_name(tmp_path):
    ca = trustme.CA()
    cert, key, ca_file = tls_files(tmp_path, ca)
    source = (
        f'tls = {{ enabled = true, cert_file = "{cert}", key_file = "{key}", client_ca_file = "{ca_file}" }}\n'
        'allow_names = ["pumpserver.hospital.example"]'
    )
    async with running_gateway(tmp_path, source=source) as gw:
        good = VendorServer(
            "127.0.0.1",
            gw.port,
            ssl_context=client_context(ca, "pumpserver.hospital.example"),
            server_hostname="127.0.0.1",
        )
        assert (await good.pcd01(P)).codes == ["CA"]
        await good.close()
        for ctx in (client_context(ca), client_context(ca, "intruder.example")):  # none / a wrong name
            bad = VendorServer("127.0.0.1", gw.port, ssl_context=ctx, server_hostname="127.0.0.1", ack_timeout_s=2)
            with pytest.raises(ConnectionError):
                await bad.send(b"MSH|^~\\&|X\r", "X", attempts=2)
            await bad.close()
        assert gw.handler.counters["received"] == 1


async def test_a_sender_outside_the_address_allowlist_is_disconnected_unread(tmp_path):
    async with running_gateway(tmp_path, source='allow = ["10.1.2.0/24"]') as gw:
        sim = VendorServer("127.0.0.1", gw.port, ack_timeout_s=2)
        with pytest.raises(ConnectionError):
            await sim.send(b"MSH|^~\\&|X\r", "X", attempts=2)
        await sim.close()
        assert gw.handler.counters["received"] == 0 and gw.listener.counters["refused_connections"] >= 1


async def test_a_frame_above_max_frame_bytes_closes_the_connection_and_is_not_used(tmp_path):
    async with running_gateway(tmp_path, source="max_frame_bytes = 2048") as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"\x0b" + b"A" * 10000 + b"\x1c\r")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, no ACK
        writer.close()
        assert gw.handler.counters["received"] == 0


async def test_an_idle_connection_is_closed(tmp_path):
    async with running_gateway(tmp_path, source="idle_timeout_s = 0.3") as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_connections_beyond_the_limit_are_refused(tmp_path):
    async with running_gateway(tmp_path, source="max_connections = 1") as gw:
        first = VendorServer("127.0.0.1", gw.port)
        assert (await first.pcd01(P)).codes == ["CA"]  # holds its connection open
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await first.close()
        assert gw.listener.counters["refused_connections"] == 1


def test_tls_without_certificate_is_a_configuration_error():
    with pytest.raises(ValueError, match="cert_file"):
        SourceConfig(name="v", port=1, tls={"enabled": True})


async def test_the_listener_binds_to_the_configured_address_only(tmp_path):
    async with running_gateway(tmp_path, bind="127.0.0.2") as gw:
        assert gw.listener._server.sockets[0].getsockname()[0] == "127.0.0.2"
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", gw.port)
        sim = VendorServer("127.0.0.2", gw.port)
        assert (await sim.pcd01(P)).codes == ["CA"]
        await sim.close()


def test_the_default_bind_address_is_loopback_and_unknown_keys_are_errors(tmp_path):
    text = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA0B"
[outbox]
path = "x.sqlite"
[[sources]]
name = "v"
port = 2575
"""
    assert load_config_text(text).sources[0].bind == "127.0.0.1"  # never all interfaces by default
    with pytest.raises(ConfigError):
        load_config_text(text + "colour = 1\n")


def test_a_source_device_id_clashing_with_a_pump_id_is_a_configuration_error():
    text = """
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA0B"
[outbox]
path = "x.sqlite"
[[pumps]]
id = "bed01"
protocol = "ne1000"
link = { type = "serial", url = "/dev/null" }
[[sources]]
name = "v"
port = 2575
devices = [{ id = "bed01", device = "S1" }]
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text)
    assert "bed01" in str(info.value.problems if hasattr(info.value, "problems") else info.value)
