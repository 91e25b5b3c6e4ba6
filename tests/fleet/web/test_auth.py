"""Passwords, session and CSRF tokens, the failed-login limiter and the [web] settings rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.web.auth import LoginLimiter, Signer, hash_password, verify_password
from fleet.web.settings import WebSettings, WebSettingsError, load_web_settings

SECRET = b"s" * 32


def test_argon2_hash_verifies_only_the_right_password():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "correct hors")
    assert not verify_password(None, "anything")
    assert not verify_password("$argon2id$garbage", "x")


def test_session_token_round_trips_and_expires():
    now = [1000.0]
    signer = Signer(SECRET, max_age_s=60, clock=lambda: now[0])
    token = signer.issue("anna")
    assert signer.check(token).user == "anna"
    now[0] += 61
    assert signer.check(token) is None


def test_session_token_from_another_secret_or_tampered_is_refused():
    token = Signer(SECRET, 60).issue("anna")
    assert Signer(b"t" * 32, 60).check(token) is None
    payload, mac = token.split(".")
    assert Signer(SECRET, 60).check(payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + mac) is None


@settings(max_examples=200)
@given(st.text(max_size=80))
def test_any_garbage_cookie_is_no_session(text):
    signer = Signer(SECRET, 60)
    assert signer.check(text) is None
    assert signer.check_pre_session(text) is None


def test_csrf_token_is_bound_to_the_session_nonce():
    signer = Signer(SECRET, 60)
    a, b = signer.check(signer.issue("anna")), signer.check(signer.issue("anna"))
    assert signer.csrf_ok(a.nonce, signer.csrf_token(a.nonce))
    assert not signer.csrf_ok(a.nonce, signer.csrf_token(b.nonce))
    assert not signer.csrf_ok(a.nonce, None)


def test_limiter_locks_a_user_name_and_a_client_after_max_failures_until_the_window_passes():
    now = [0.0]
    lim = LoginLimiter(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert not lim.locked("anna", "10.0.0.1")
        lim.failed("anna", "10.0.0.1")
    assert lim.locked("anna", "10.0.0.2")  # same name from elsewhere
    assert lim.locked("bert", "10.0.0.1")  # same client guessing another name
    assert not lim.locked("bert", "10.0.0.2")
    now[0] = 61
    assert not lim.locked("anna", "10.0.0.1")


def test_beyond_loopback_without_tls_is_refused_with_the_key_named():
    with pytest.raises(ValueError, match="web.tls_cert"):
        WebSettings(host="0.0.0.0")
    WebSettings(host="127.0.0.1")
    WebSettings(host="::1")


def test_load_names_file_and_key(tmp_path: Path):
    f = tmp_path / "fleet.toml"
    f.write_text('[web]\nport = 8470\n[[web.users]]\nname = "anna"\nrole = "boss"\npassword_hash = "$argon2id$x"\n')
    with pytest.raises(WebSettingsError, match=r"fleet.toml: web.users.0.role"):
        load_web_settings(f)
    f.write_text("[web]\nprot = 1\n")
    with pytest.raises(WebSettingsError, match="web.prot"):
        load_web_settings(f)
