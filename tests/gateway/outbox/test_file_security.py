"""Outbox files are private whatever the umask; a read-only operator can look and is told the
truth when they cannot write (real files, real CLI subprocess, real permission checks)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess

import pytest

from gateway.hl7.context import ControlIdGenerator
from gateway.outbox import Outbox, OutboxAccessError, schema


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def hl7(cid: str) -> bytes:
    return f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|{cid}|P|2.6\rPID|||MRN1\r".encode()


async def test_the_outbox_and_its_wal_and_shm_are_0640_under_umask_022(tmp_path, umask_022):
    ob = Outbox.open(tmp_path / "o.db")
    await ob.enqueue(lane="doc", kind="pcd01", control_id="C1", payload=hl7("C1"), ttl_s=60)
    try:
        for suffix in ("", "-wal", "-shm"):
            assert mode(f"{tmp_path / 'o.db'}{suffix}") == 0o640, suffix
    finally:
        ob.close()


def test_an_outbox_left_world_readable_by_an_older_version_is_tightened_on_open(tmp_path, umask_022):
    Outbox.open(tmp_path / "o.db").close()
    os.chmod(tmp_path / "o.db", 0o644)
    Outbox.open(tmp_path / "o.db").close()
    assert mode(tmp_path / "o.db") == 0o640


def test_the_control_id_state_file_is_0640_under_umask_022(tmp_path, umask_022):
    gen = ControlIdGenerator("0011223344556677", state_path=tmp_path / "ids.state")
    gen.next_id()
    assert mode(tmp_path / "ids.state") == 0o640


def as_operator(*cmd: str, **kw) -> subprocess.CompletedProcess[str]:
    """Run without any capability: root then obeys file permissions like any operator."""
    return subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop capabilities"
)


async def _service_outbox(folder) -> None:
    """A service-owned outbox (uid 65534) readable by group root (our operator's group)."""
    folder.mkdir()
    ob = Outbox.open(folder / "o.db")
    for i in range(3):
        await ob.enqueue(lane="doc", kind="pcd01", control_id=f"C{i}", payload=hl7(f"C{i}"), ttl_s=60)
    msg = await ob.claim("doc")
    await ob.finish(msg, "quarantined", reason="AE from receiver", ack_text="x", claim_next=False)
    ob.close()
    for path in (folder, *folder.iterdir()):
        os.chown(path, 65534, 0)
    os.chmod(folder, 0o750)


@needs_root
@pytest.mark.parametrize("daemon_running", [False, True])
async def test_a_read_only_operator_gets_stats_list_show_and_a_correct_message_for_requeue(
    tmp_path, pumpgw_cmd, subprocess_env, daemon_running
):
    folder = tmp_path / "state"
    await _service_outbox(folder)
    os.chmod(tmp_path, 0o755)
    db = str(folder / "o.db")
    live = None
    if daemon_running:  # the daemon holds the file open: -wal and -shm exist
        live = Outbox.open(folder / "o.db")
        await live.enqueue(lane="doc", kind="pcd01", control_id="C9", payload=hl7("C9"), ttl_s=60)
        for side in ("o.db-wal", "o.db-shm"):
            os.chown(folder / side, 65534, 0)
    try:
        for action in (["stats"], ["list"], ["show", "1"]):
            r = await asyncio.to_thread(as_operator, *pumpgw_cmd, "outbox", "--db", db, *action, env=subprocess_env)
            assert r.returncode == 0, (action, r.stderr)
        assert (
            "doc"
            in (
                await asyncio.to_thread(as_operator, *pumpgw_cmd, "outbox", "--db", db, "stats", env=subprocess_env)
            ).stdout
        )
        r = await asyncio.to_thread(
            as_operator, *pumpgw_cmd, "outbox", "--db", db, "requeue", "--quarantined", env=subprocess_env
        )
        assert r.returncode == 1
        assert "corrupt" not in r.stderr and "move it aside" not in r.stderr
        assert "not damaged" in r.stderr and "Traceback" not in r.stderr
    finally:
        if live is not None:
            live.close()


@needs_root
async def test_an_operator_who_may_not_read_is_told_so_not_that_the_file_is_corrupt(
    tmp_path, pumpgw_cmd, subprocess_env
):
    folder = tmp_path / "state"
    await _service_outbox(folder)
    os.chmod(folder / "o.db", 0o600)
    os.chmod(tmp_path, 0o755)
    r = await asyncio.to_thread(
        as_operator, *pumpgw_cmd, "outbox", "--db", str(folder / "o.db"), "stats", env=subprocess_env
    )
    assert r.returncode == 1
    assert "cannot read" in r.stderr and "corrupt" not in r.stderr and "Traceback" not in r.stderr


def test_access_errors_are_not_corruption(tmp_path):
    assert not issubclass(OutboxAccessError, schema.OutboxCorrupt)
