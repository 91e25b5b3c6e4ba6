"""`pumpgw demo` as a user runs it: simulated pumps, local EHR, gateway, all in one command."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from gateway.druglib.verdicts import VerdictKind

VERDICT_KINDS = {k.value for k in VerdictKind}


def test_demo_documents_every_pump_in_the_local_ehr_and_exits_0_on_sigterm(tmp_path, pumpgw_cmd, subprocess_env):
    log = tmp_path / "ehr-received.jsonl"
    proc = subprocess.Popen(
        [*pumpgw_cmd, "demo", "--state-dir", str(tmp_path), "--status-every", "1"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        records: list[dict] = []
        while time.monotonic() < deadline:
            if log.exists():
                records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
                pcd01_beds = {
                    r["raw"].split("PV1|")[1].split("\r")[0].split("|")[2].split("^")[-1]
                    for r in records
                    if r["message_type"] == "ORU^R01^ORU_R01"
                }
                kinds = {
                    k
                    for r in records
                    if r["message_type"] == "ORU^R01^ORU_R01"
                    for k in VERDICT_KINDS
                    if f"|{k}^" in r["raw"]
                }
                if {"ICU-3 bed 1", "ICU-3 bed 2", "ICU-3 bed 3"} <= pcd01_beds and kinds == VERDICT_KINDS:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"not every pump / verdict kind documented within 40 s: {records[-3:]}")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    # it told the user where everything is, then a line per pump
    assert "EHR receiver (MLLP)   127.0.0.1:" in out and str(log) in out and "outbox.sqlite" in out
    assert "vendor pump server" in out and "source 'vendor-demo' listening on 127.0.0.1:" in out
    for bed in ("bed01", "bed02", "bed03"):
        assert f"pump {bed}" in out and "/dev/pts/" in out
        assert any(line.strip().startswith(bed) and "rate" in line for line in out.splitlines())
    # every message was acknowledged and passes the IHE PCD conformance checker
    assert all(r["answer"] == "AA" for r in records)
    assert [r["findings"] for r in records if r["findings"]] == []
    assert {r["message_type"] for r in records} >= {"ORU^R01^ORU_R01", "ORU^R42^ORU_R01"}
    assert "Traceback" not in err
    # the drug library is in force: basic infusions (no drug reported) carry a verdict row
    assert any(
        "PUMPGW_DRUGLIB_VERDICT" in r["raw"] and "drug_not_in_library" in r["raw"]
        for r in records
        if r["message_type"] == "ORU^R01^ORU_R01"
    )
