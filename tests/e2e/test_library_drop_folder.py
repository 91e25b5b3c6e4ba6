"""A running gateway without MQTT takes signed releases from its drop folder, and a key
removed from the trust list (SIGHUP) stops verifying: its next release is refused."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.e2e.test_library_reload import wait_for_log
from tests.gateway.druglib.release_kit import library, make_key, sign, wait_audit_row


def _config(path: Path, tmp: Path, keys: list[Path]) -> None:
    trusted = ", ".join(f'{{ file = "{k}", valid_from = "2020-01-01T00:00:00Z" }}' for k in keys)
    path.write_text(f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA07"
incomplete_reason = "library drop-folder test: no pumps, no destinations"

[health]
enabled = false

[outbox]
path = "{tmp / "outbox.sqlite"}"

[library]
trusted_keys = [{trusted}]
watch_dir = "{tmp / "drop"}"

[logging]
format = "json"
""")


def test_dropped_releases_apply_and_a_revoked_key_is_refused_after_reload(tmp_path, pumpgw_cmd, subprocess_env):
    old, new = make_key(tmp_path / "keys", "pharmacy-2026"), make_key(tmp_path / "keys", "pharmacy-2027")
    drop = tmp_path / "drop"
    drop.mkdir()
    config = tmp_path / "gw.toml"
    _config(config, tmp_path, [old.public_file, new.public_file])
    log = tmp_path / "daemon.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*pumpgw_cmd, "run", "--config", str(config)], env=subprocess_env, stderr=err)
    try:
        wait_for_log(log, lambda r: r.get("event") == "started")
        v1 = library("2026.12")
        (drop / "v1.json").write_bytes(v1)
        (drop / "v1.json.sig").write_bytes(sign(v1, old, 1))
        applied = wait_for_log(log, lambda r: r.get("event") == "drug library release in force")
        assert (applied["version"], applied["source"], applied["signer_key_id"]) == ("2026.12", "watch_dir", old.key_id)
        # the old key is revoked: removed from the trust list, then reload
        _config(config, tmp_path, [new.public_file])
        proc.send_signal(signal.SIGHUP)
        wait_for_log(
            log, lambda r: r.get("event") == "SIGHUP: drug library trust list reloaded" and r["keys"] == [new.key_id]
        )
        wait_for_log(log, lambda r: r.get("event") == "drug library in force is no longer trusted")
        v2 = library("2027.01")
        (drop / "v2.json").write_bytes(v2)
        (drop / "v2.json.sig").write_bytes(sign(v2, old, 2))
        refused = wait_for_log(
            log, lambda r: r.get("event") == "drug library release refused" and "v2.json" in r["where"]
        )
        assert refused["reason"] == "SignatureError" and refused["signer_key_id"] == old.key_id
        assert refused["in_force_version"] == "2026.12"
        wait_audit_row(
            tmp_path / "outbox.sqlite",
            lambda row: row.kind == "drug_library.refused" and "v2.json" in row.detail_dict.get("where", ""),
        )
        wait_for_log(
            log,
            lambda r: (
                r.get("event") == "gateway alert"
                and r.get("alert") == "drug_library_refused"
                and "v2.json" in r.get("where", "")
            ),
        )
        # the same release signed with the new key goes through
        (drop / "v2b.json").write_bytes(v2)
        (drop / "v2b.json.sig").write_bytes(sign(v2, new, 2))
        second = wait_for_log(
            log, lambda r: r.get("event") == "drug library release in force" and r["version"] == "2027.01"
        )
        assert second["signer_key_id"] == new.key_id
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
