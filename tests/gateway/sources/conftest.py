"""An in-process gateway with one vendor-server source, a real EHR receiver and a real outbox."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from common.resources import config_dir
from gateway.config.load import load_config_text
from gateway.daemon import Daemon, build_daemon
from simulators.ehr import EhrReceiver
from simulators.vendor_server.messages import VERDICT_PROGRAMS

LIBRARY = config_dir() / "drug-library.example.json"


def source_config_text(
    tmp_path: Path,
    *,
    ehr_port: int,
    source: str = "",
    extra: str = "",
    port: int = 0,
    devices: bool = True,
    bind: str = "127.0.0.1",
) -> str:
    listed = (
        "".join(
            f"""
[[sources.devices]]
id = "vs-{n:02d}"
device = "{p.device}"
location = "{p.bed}"
care_area = "ICU"
"""
            for n, p in enumerate(VERDICT_PROGRAMS.values(), 1)
        )
        if devices
        else ""
    )
    return f"""
[gateway]
site = "test-site"
ward = "icu-t"
gateway_id = "gw-test"
eui64 = "001BC50C0000AA01"

[hl7]
pcd01_interval_s = 3600
processing_id = "P"

[outbox]
path = "{tmp_path / "outbox.sqlite"}"

[library]
path = "{LIBRARY}"

[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = {ehr_port}
messages = ["pcd01", "pcd10", "pcd04"]
ack_timeout_s = 2
connect_timeout_s = 2
retry = {{ initial_backoff_s = 0.1, max_backoff_s = 0.5 }}
{extra}
[[sources]]
name = "vendor"
bind = "{bind}"
port = {port}
{source}
{listed}
"""


@dataclass
class Gateway:
    daemon: Daemon
    ehr: EhrReceiver
    port: int

    @property
    def listener(self):
        return self.daemon.sources[0]

    @property
    def handler(self):
        return self.daemon.sources[0].handler

    async def wait_for_ehr(self, predicate, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.ehr.received):
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_gateway(tmp_path: Path, **kw):
    """One in-process gateway (kwargs: source=..., extra=..., devices=...), stopped at the end."""
    ehr = EhrReceiver(port=0)
    ehr_port = await ehr.start()
    config = load_config_text(source_config_text(tmp_path, ehr_port=ehr_port, **kw), base_dir=tmp_path)
    daemon = build_daemon(config)
    task = asyncio.get_running_loop().create_task(daemon.supervisor.run(install_signal_handlers=False))
    try:
        async with asyncio.timeout(10):
            await daemon.sources[0].ready.wait()
        yield Gateway(daemon, ehr, daemon.sources[0].port)
    finally:
        daemon.supervisor.request_stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(15):
                await task
        await ehr.stop()
