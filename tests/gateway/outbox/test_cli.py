"""`pumpgw outbox` as an operator runs it: a real subprocess on a real outbox file."""

from __future__ import annotations

import asyncio
import json
import subprocess

from gateway.outbox import Outbox


def hl7(cid: str) -> bytes:
    return f"MSH|^~\\&|PUMPGW|W|EHR|H|20240101000000+0000||ORU^R01^ORU_R01|{cid}|P|2.6\r".encode()


async def make_outbox(path) -> None:
    ob = Outbox.open(path)
    for i in range(3):
        await ob.enqueue(lane="doc", kind="pcd01", control_id=f"C{i}", payload=hl7(f"C{i}"), ttl_s=60)
    await ob.enqueue(lane="am", kind="pcd04", control_id="A0", payload=hl7("A0"), ttl_s=0.01)
    msg = await ob.claim("doc")
    await ob.finish(msg, "quarantined", reason="AE from receiver", ack_text="unknown patient", claim_next=False)
    await asyncio.sleep(0.05)
    await ob.claim("am")  # A0 expires
    ob.close()
    Outbox.open(path).close()  # a restart: claimed rows back to pending


def run(cmd, env, *args):
    return subprocess.run([*cmd, "outbox", *args], env=env, capture_output=True, text=True, timeout=30)


def test_stats_list_show_requeue_purge_with_json(tmp_path, pumpgw_cmd, subprocess_env):
    db = tmp_path / "o.db"
    asyncio.run(make_outbox(db))
    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "stats", "--json")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["doc"]["pending"] == 2 and stats["doc"]["quarantined"] == 1 and stats["am"]["expired"] == 1
    assert stats["doc"]["oldest_pending_age_s"] >= 0 and stats["doc"]["bytes"] > 0

    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "stats")
    assert "doc" in r.stdout and "quarantined" in r.stdout

    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "list", "--state", "quarantined", "--json")
    (q,) = json.loads(r.stdout)
    assert q["control_id"] == "C0" and q["reason"] == "AE from receiver"

    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "show", str(q["id"]), "--json")
    shown = json.loads(r.stdout)
    assert shown["ack_text"] == "unknown patient" and "MSH|" in shown["payload"]

    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "requeue", "--quarantined", "--json")
    assert json.loads(r.stdout) == {"requeued": 1}
    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "purge", "--expired", "--older-than", "1h", "--json")
    assert json.loads(r.stdout) == {"purged": 0}
    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "purge", "--expired", "--older-than", "0s")
    assert r.returncode == 0 and "purged 1" in r.stdout
    stats = json.loads(run(pumpgw_cmd, subprocess_env, "--db", str(db), "stats", "--json").stdout)
    assert stats["doc"]["pending"] == 3 and stats["doc"]["quarantined"] == 0 and "am" not in stats


def test_show_unknown_id_and_missing_file_fail_with_exit_1(tmp_path, pumpgw_cmd, subprocess_env):
    db = tmp_path / "o.db"
    asyncio.run(make_outbox(db))
    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "show", "999")
    assert r.returncode == 1 and "no outbox message with id 999" in r.stderr
    r = run(pumpgw_cmd, subprocess_env, "--db", str(tmp_path / "absent.db"), "stats")
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_bad_duration_is_a_usage_error(tmp_path, pumpgw_cmd, subprocess_env):
    r = run(pumpgw_cmd, subprocess_env, "--db", str(tmp_path / "o.db"), "purge", "--expired", "--older-than", "soon")
    assert r.returncode == 2 and "30s, 15m, 12h or 7d" in r.stderr


def _damaged_outbox(path) -> None:
    """An outbox whose page 1 (schema) is sound but one data page is overwritten."""

    async def fill() -> None:
        ob = Outbox.open(path)
        for i in range(300):
            await ob.enqueue(lane="doc", kind="pcd01", control_id=f"C{i}", payload=hl7(f"C{i}") * 20, ttl_s=60)
        await ob.aclose()

    asyncio.run(fill())
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        f.seek(page_size * (pages // 2) + 16)
        f.write(b"\x55" * (page_size - 32))


def test_check_reports_a_damaged_page_and_exits_non_zero(tmp_path, pumpgw_cmd, subprocess_env):
    db = tmp_path / "o.db"
    asyncio.run(make_outbox(db))
    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "check", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True
    _damaged_outbox(db)
    r = run(pumpgw_cmd, subprocess_env, "--db", str(db), "check")
    assert r.returncode == 1 and "FAILED" in r.stdout and "Traceback" not in r.stderr


def test_the_daemon_outbox_checks_integrity_after_opening_and_alerts(tmp_path):
    db = tmp_path / "o.db"
    _damaged_outbox(db)
    alerts = []

    async def check() -> list[str]:
        ob = Outbox.open(db, on_alert=lambda name, details: alerts.append((name, details)))  # reads no data page
        try:
            return await ob.check_integrity()
        finally:
            ob.close()

    problems = asyncio.run(check())
    assert problems and alerts and alerts[0][0] == "outbox_corrupt"
