"""`pumpgw library keygen|sign|verify|publish`: one line of reason and exit 1 when refused."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.druglib.errors import LibraryError
from gateway.mqtt.library_payloads import decode_release
from tests.gateway.druglib.release_kit import library, one_limit_digit_changed


@pytest.fixture
def cli(pumpgw_cmd, subprocess_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*pumpgw_cmd, "library", *args], env=subprocess_env, capture_output=True, text=True, timeout=60
        )

    return run


def test_keygen_sign_verify_and_the_refusals_a_pharmacist_meets(tmp_path, cli):
    assert cli("keygen", "--name", "ph", "--out", str(tmp_path)).returncode == 0
    assert (tmp_path / "ph.key").stat().st_mode & 0o777 == 0o600
    again = cli("keygen", "--name", "ph", "--out", str(tmp_path))
    assert again.returncode == 1 and "refusing to overwrite a key" in again.stderr
    lib = tmp_path / "lib.json"
    lib.write_bytes(library("2027.01"))
    signed = cli("sign", str(lib), "--key", str(tmp_path / "ph.key"), "--serial", "42")
    assert signed.returncode == 0 and "serial 42" in signed.stdout
    sig = json.loads((tmp_path / "lib.json.sig").read_text())
    assert sig["metadata"]["version"] == "2027.01" and sig["metadata"]["serial"] == 42
    ok = cli("verify", str(lib), "--pubkey", str(tmp_path / "ph.pub"))
    assert ok.returncode == 0 and "signature OK" in ok.stdout
    lib.write_bytes(one_limit_digit_changed(lib.read_bytes()))
    bad = cli("verify", str(lib), "--pubkey", str(tmp_path / "ph.pub"))
    assert bad.returncode == 1 and "NOT verified" in bad.stderr and "altered after signing" in bad.stderr
    assert "Traceback" not in bad.stderr
    draft = tmp_path / "draft.json"
    draft.write_bytes(library("2027.02", edit=lambda d: d.update(status="draft")))
    refused = cli("sign", str(draft), "--key", str(tmp_path / "ph.key"))
    assert refused.returncode == 1 and "not signed" in refused.stderr and "only a released library" in refused.stderr


def test_publish_without_a_broker_says_so_in_one_line(tmp_path, cli):
    cli("keygen", "--name", "ph", "--out", str(tmp_path))
    lib = tmp_path / "lib.json"
    lib.write_bytes(library("2027.01"))
    cli("sign", str(lib), "--key", str(tmp_path / "ph.key"))
    from tests.ports import free_port

    out = cli("publish", str(lib), "--broker", f"127.0.0.1:{free_port()}")
    assert out.returncode == 1 and out.stderr.startswith("not published: MQTT broker 127.0.0.1:")
    assert "cannot connect" in out.stderr and "Traceback" not in out.stderr
    other = tmp_path / "other.json"
    other.write_bytes(library("2027.09"))
    mismatch = cli("publish", str(other), "--signature", str(lib) + ".sig", "--broker", "127.0.0.1:1")
    assert mismatch.returncode == 1 and "is not the signature of this library" in mismatch.stderr


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda x: (
                st.lists(x, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["schema_version", "signature", "library", "published_at", "x"]), x, max_size=4
                )
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_payload_on_library_current_decodes_or_raises_a_library_error(payload):
    try:
        decode_release(payload, where="mqtt t", max_bytes=4096)
    except LibraryError as exc:
        assert "mqtt t" in str(exc)
