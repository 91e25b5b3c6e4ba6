"""`pumpgw run` starts on a full disk, says so once, and still delivers (real 4 MiB tmpfs)."""

from __future__ import annotations

import asyncio
import signal

from gateway.outbox import Outbox
from simulators.ehr import EhrReceiver
from simulators.fleet import PtyFleet, demo_pumps
from tests.small_fs import fill, mounted_tmpfs

from .conftest import write_gateway_config
from .test_daemon import _start_daemon, _until


async def test_the_daemon_starts_on_a_full_disk_says_so_once_and_delivers(tmp_path, pumpgw_cmd, subprocess_env):
    with mounted_tmpfs(tmp_path / "fs") as fs:
        outbox = fs / "outbox.sqlite"
        Outbox.open(outbox, reserve_bytes=1 << 20).close()  # a previous run left its outbox and reserve
        receiver = EhrReceiver(port=0)
        port = await receiver.start()
        async with PtyFleet(demo_pumps()) as fleet:
            config = write_gateway_config(tmp_path / "gw.toml", ptys=fleet.paths, ehr_port=port, outbox=outbox)
            config.write_text(
                config.read_text().replace(f'path = "{outbox}"', f'path = "{outbox}"\nreserve_bytes = 1048576')
            )
            fill(fs)  # then the disk filled up (another process, a log ...)
            log = tmp_path / "daemon.log"
            proc = await _start_daemon(pumpgw_cmd, subprocess_env, config, log)
            try:
                await _until(lambda: "the disk is full" in log.read_text(), 20, "the full-disk ERROR")
                await _until(lambda: len(receiver.received) >= 5, 30, "deliveries from the full disk")
                assert proc.returncode is None
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), 15) == 0
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        await receiver.stop()
    text = log.read_text()
    assert text.count("the disk is full") == 1
    assert "Traceback" not in text and "Task exception was never retrieved" not in text
