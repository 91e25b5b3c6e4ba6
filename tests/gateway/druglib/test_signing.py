"""Ed25519 release signatures: what verifies, what does not, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.druglib.errors import LibraryError
from gateway.druglib.signing import SignatureError, parse_signature_file
from gateway.druglib.trust import TrustList
from tests.gateway.druglib.release_kit import library, make_key, one_limit_digit_changed, sign

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def pharmacy(tmp_path):
    return make_key(tmp_path / "keys", "pharmacy")


def test_a_signed_library_verifies_and_carries_its_release_metadata(pharmacy):
    lib = library("2026.12")
    sig = sign(lib, pharmacy, 7, signed_at=NOW)
    release = TrustList.from_config([pharmacy.trusted()]).verify(lib, sig, where="lib.json", now=NOW)
    assert (release.metadata.version, release.metadata.serial, release.metadata.signer_key_id) == (
        "2026.12",
        7,
        pharmacy.key_id,
    )


def test_reformatting_the_file_keeps_the_signature_valid(pharmacy):
    sig = sign(library("2026.12", indent=2), pharmacy, 7, signed_at=NOW)
    trust = TrustList.from_config([pharmacy.trusted()])
    verified = trust.verify(library("2026.12", indent=None), sig, where="lib.json", now=NOW)
    assert (verified.metadata.version, verified.metadata.signer_key_id) == ("2026.12", pharmacy.key_id)


def test_one_changed_byte_in_a_limit_breaks_the_signature(pharmacy):
    lib = library("2026.12")
    sig = sign(lib, pharmacy, 7, signed_at=NOW)
    tampered = one_limit_digit_changed(lib)
    with pytest.raises(SignatureError, match="altered after signing"):
        TrustList.from_config([pharmacy.trusted()]).verify(tampered, sig, where="lib.json", now=NOW)


def test_changed_metadata_breaks_the_signature(pharmacy):
    lib = library("2026.12")
    sig = json.loads(sign(lib, pharmacy, 7, signed_at=NOW))
    sig["metadata"]["serial"] = 8
    with pytest.raises(SignatureError, match="does not verify"):
        TrustList.from_config([pharmacy.trusted()]).verify(lib, json.dumps(sig).encode(), where="l", now=NOW)


def test_a_key_not_on_the_trust_list_is_refused_by_its_key_id(tmp_path, pharmacy):
    stranger = make_key(tmp_path / "other", "stranger")
    lib = library("2026.12")
    with pytest.raises(SignatureError, match=f"key {stranger.key_id}, which is not a trusted key"):
        TrustList.from_config([pharmacy.trusted()]).verify(
            lib, sign(lib, stranger, 7, signed_at=NOW), where="l", now=NOW
        )


def test_a_retired_key_still_verifies_what_it_signed_inside_its_window_but_nothing_later(pharmacy):
    lib = library("2026.12")
    trust = TrustList.from_config([pharmacy.trusted(valid_until=NOW)])
    trust.verify(
        lib, sign(lib, pharmacy, 7, signed_at=NOW - timedelta(days=1)), where="l", now=NOW + timedelta(days=90)
    )
    with pytest.raises(SignatureError, match="was not valid at signed_at"):
        trust.verify(
            lib, sign(lib, pharmacy, 8, signed_at=NOW + timedelta(hours=1)), where="l", now=NOW + timedelta(days=1)
        )


def test_a_signature_dated_in_the_future_is_refused(pharmacy):
    lib = library("2026.12")
    with pytest.raises(SignatureError, match="in the future"):
        TrustList.from_config([pharmacy.trusted()]).verify(
            lib, sign(lib, pharmacy, 7, signed_at=NOW + timedelta(hours=1)), where="l", now=NOW
        )


def test_a_configured_key_id_that_does_not_match_the_key_file_is_reported(tmp_path, pharmacy):
    cfg = pharmacy.trusted().model_copy(update={"key_id": "0" * 16})
    trust = TrustList.from_config([cfg])
    assert not trust.keys and "the configuration expects 0000000000000000" in str(trust.problems[0])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_any_signature_file_bytes_parse_or_raise_a_signature_error(data):
    try:
        parse_signature_file(data, where="x.sig")
    except SignatureError as exc:
        assert "x.sig" in str(exc)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["format", "metadata", "signature", "x"]),
        st.one_of(
            st.text(max_size=8), st.integers(), st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5))
        ),
        max_size=4,
    )
)
def test_malformed_signature_objects_are_refused_with_a_library_error(obj):
    with pytest.raises(LibraryError):
        parse_signature_file(json.dumps(obj).encode(), where="x.sig")
