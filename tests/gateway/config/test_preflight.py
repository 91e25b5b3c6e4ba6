"""check-config is the ExecStartPre gate: it refuses exactly what `pumpgw run` refuses.

Each broken host is shown to both commands (real subprocesses); both exit 1 naming the
problem, and a good host passes both."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from common.resources import config_dir

pytestmark = pytest.mark.slow

LIBRARY = config_dir() / "drug-library.example.json"
PIN = "1cb74b653c7f1ab309f8d09d5b728689e38ed3e0b85498bb4a1039a32670133e"


def write(
    tmp_path,
    *,
    library: str = "",
    pumps: bool = True,
    destination: bool = True,
    tls: str = "",
    outbox: str = "",
    gateway_extra: str = "",
    device: str = "loop://",
) -> object:
    shutil.copy(LIBRARY, tmp_path / "lib.json")
    text = f"""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA01"
{gateway_extra}

[outbox]
path = "{outbox or tmp_path / "outbox.sqlite"}"

[health]
enabled = false

[library]
path = "lib.json"
sha256 = "{library or PIN}"
"""
    if destination:
        text += f"""
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = 9
messages = ["pcd01", "pcd10", "pcd04"]
{tls}
"""
    if pumps:
        text += f"""
[[pumps]]
id = "bed01"
protocol = "ne1000"
care_area = "ICU"
link = {{ type = "serial", url = "{device}" }}
"""
    path = tmp_path / "gw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run(command: str, path, env, *options) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", command, str(path), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


BROKEN = {
    "library pin": (dict(library="1" * 64), "library.sha256: ", "SHA-256 pin mismatch"),
    "missing CA file": (
        dict(tls='tls = { enabled = true, ca_file = "absent-ca.pem" }'),
        "destinations[0].tls: TLS file",
        "absent-ca.pem: cannot load CA bundle: No such file",
    ),
    "no pumps": (dict(pumps=False), "pumps: no [[pumps]]", "gateway.incomplete_reason"),
    "no destinations": (dict(destination=False), "destinations: no [[destinations]]", "incomplete_reason"),
    "outbox folder missing": (
        dict(outbox="/nonexistent-pumpgw/outbox.sqlite"),
        "outbox.path: folder /nonexistent-pumpgw",
        "does not exist",
    ),
}


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_check_config_and_run_refuse_the_same_broken_host(case, command, tmp_path, subprocess_env):
    kwargs, where, what = BROKEN[case]
    path = write(tmp_path, **kwargs)
    result = run(command, path, subprocess_env)
    assert result.returncode == 1, result.stderr
    assert "not ready to run on this host" in result.stderr
    assert where in result.stderr and what in result.stderr
    assert "Traceback" not in result.stderr


def test_a_good_host_passes_check_config_and_states_what_was_checked(tmp_path, subprocess_env):
    result = run("check-config", write(tmp_path), subprocess_env)
    assert result.returncode == 0, result.stderr
    assert "host checks   passed" in result.stdout


def test_an_absent_serial_device_is_a_stated_warning_not_an_error(tmp_path, subprocess_env):
    result = run("check-config", write(tmp_path, device=str(tmp_path / "ttyUSB7")), subprocess_env)
    assert result.returncode == 0, result.stderr
    assert (
        f"serial device {tmp_path / 'ttyUSB7'} of pump 'bed01' is absent now (a warning, not an error" in result.stdout
    )


def test_an_explicit_reason_allows_a_gateway_without_pumps(tmp_path, subprocess_env):
    path = write(tmp_path, pumps=False, gateway_extra='incomplete_reason = "draining the outbox"')
    assert run("check-config", path, subprocess_env).returncode == 0


def test_file_only_skips_the_host_checks_and_says_so(tmp_path, subprocess_env):
    result = run("check-config", write(tmp_path, library="1" * 64), subprocess_env, "--file-only")
    assert result.returncode == 0, result.stderr
    assert "host checks   skipped (--file-only)" in result.stdout


def test_the_shipped_ward_example_fails_the_gate_on_a_host_without_its_files(subprocess_env):
    result = run("check-config", config_dir() / "ward-example.toml", subprocess_env)
    assert result.returncode == 1
    assert "/etc/pumpgw/drug-library.json: cannot read file" in result.stderr
    assert "hospital-ca.pem: cannot load CA bundle" in result.stderr


def _signed_config(tmp_path, pumpgw_cmd, env, *, tamper: bool = False, key_present: bool = True):
    path = write(tmp_path)  # copies the example library to lib.json
    for argv in (
        ["library", "keygen", "--name", "pharmacy", "--out", str(tmp_path)],
        ["library", "sign", str(tmp_path / "lib.json"), "--key", str(tmp_path / "pharmacy.key"), "--serial", "1"],
    ):
        done = subprocess.run([*pumpgw_cmd, *argv], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    if tamper:  # one changed limit after signing
        text = (tmp_path / "lib.json").read_text(encoding="utf-8")
        (tmp_path / "lib.json").write_text(
            text.replace('"max_rate_ml_h": 999', '"max_rate_ml_h": 998', 1), encoding="utf-8"
        )
    if not key_present:
        (tmp_path / "pharmacy.pub").unlink()
    text = path.read_text(encoding="utf-8").replace(
        f'sha256 = "{PIN}"\n',
        f"""
[[library.trusted_keys]]
file = "{tmp_path / "pharmacy.pub"}"
valid_from = "2020-01-01T00:00:00Z"
""",
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_signed_mode_a_signed_library_passes_the_gate(tmp_path, pumpgw_cmd, subprocess_env):
    result = run("check-config", _signed_config(tmp_path, pumpgw_cmd, subprocess_env), subprocess_env)
    assert result.returncode == 0, result.stderr


def test_signed_mode_a_library_changed_after_signing_fails_the_gate(tmp_path, pumpgw_cmd, subprocess_env):
    result = run("check-config", _signed_config(tmp_path, pumpgw_cmd, subprocess_env, tamper=True), subprocess_env)
    assert result.returncode == 1 and "library.path: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_signed_mode_a_missing_trusted_key_fails_the_gate(tmp_path, pumpgw_cmd, subprocess_env):
    result = run(
        "check-config", _signed_config(tmp_path, pumpgw_cmd, subprocess_env, key_present=False), subprocess_env
    )
    assert result.returncode == 1 and "library.trusted_keys: trusted key unusable" in result.stderr, result.stderr


def test_a_gateway_fed_only_by_a_vendor_server_source_is_not_pumpless():
    """[[sources]] bring their own pumps (issue 13): no [[pumps]] is then not a problem."""
    from gateway.config import load_config_text
    from gateway.config.preflight import structure

    config = load_config_text("""
[gateway]
site = "s"
ward = "w"
gateway_id = "g"
eui64 = "001BC50C0000AA03"
[outbox]
path = "o.sqlite"
[[destinations]]
name = "ehr"
host = "127.0.0.1"
port = 2575
messages = ["pcd01"]
[[sources]]
name = "vendor"
port = 0
admit = "any"
""")
    assert list(structure(config)) == []
    assert [f.key for f in structure(config.model_copy(update={"sources": []}))] == [("pumps",)]
