"""Salted scrypt password hashes: format, verification, and robustness against malformed stored values."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from grok2api.passwords import hash_password, verify_password

_FORMAT = re.compile(r"scrypt\$(\d+)\$(\d+)\$(\d+)\$([0-9a-f]{32})\$([0-9a-f]{64})")


def test_hash_format_is_scrypt_with_parameters_salt_and_digest() -> None:
    stored = hash_password("correct horse")
    match = _FORMAT.fullmatch(stored)
    assert match is not None, stored
    n, r, p, salt, digest = match.groups()
    assert (int(n), int(r), int(p)) == (2**14, 8, 1)
    # The digest really is scrypt over the password with the stored salt and parameters.
    expected = hashlib.scrypt(b"correct horse", salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    assert digest == expected.hex()
    assert "correct horse" not in stored


def test_verify_accepts_the_right_password_and_rejects_others() -> None:
    stored = hash_password("s3cret-pw")
    assert verify_password("s3cret-pw", stored) is True
    assert verify_password("s3cret-PW", stored) is False
    assert verify_password("s3cret-pw ", stored) is False
    assert verify_password("", stored) is False


def test_unicode_and_empty_passwords_round_trip() -> None:
    stored = hash_password("pässwörd 密码")
    assert verify_password("pässwörd 密码", stored) is True
    assert verify_password("passwort 密码", stored) is False
    empty = hash_password("")
    assert verify_password("", empty) is True
    assert verify_password(" ", empty) is False


def test_each_hash_has_its_own_salt() -> None:
    first, second = hash_password("same"), hash_password("same")
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert first.split("$")[5] != second.split("$")[5]
    assert verify_password("same", first) and verify_password("same", second)


def test_stored_parameters_are_honoured() -> None:
    """A hash made with other (cheaper) parameters still verifies: the parameters come from the stored string."""
    salt = bytes(range(16))
    digest = hashlib.scrypt(b"pw", salt=salt, n=2**4, r=2, p=1, dklen=32)
    stored = f"scrypt${2**4}$2$1${salt.hex()}${digest.hex()}"
    assert verify_password("pw", stored) is True
    assert verify_password("pw", stored.replace("$2$1$", "$4$1$", 1)) is False


def _good() -> str:
    return hash_password("pw")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda h: "", id="empty"),
        pytest.param(lambda h: "not a hash", id="no-separators"),
        pytest.param(lambda h: h.rsplit("$", 1)[0], id="too-few-fields"),
        pytest.param(lambda h: h + "$extra", id="too-many-fields"),
        pytest.param(lambda h: "bcrypt" + h[len("scrypt") :], id="other-scheme"),
        pytest.param(lambda h: h.replace("$16384$", "$abc$", 1), id="n-not-a-number"),
        pytest.param(lambda h: h.replace("$16384$", "$1000$", 1), id="n-not-power-of-two"),
        pytest.param(lambda h: h.replace("$16384$", "$-1$", 1), id="n-negative"),
        pytest.param(lambda h: h.replace("$16384$8$", "$16384$0$", 1), id="r-zero"),
        pytest.param(lambda h: h.replace("$16384$", "$1048576$", 1), id="n-too-costly"),
        pytest.param(lambda h: "$".join([*h.split("$")[:4], "zz" * 16, h.split("$")[5]]), id="salt-not-hex"),
        pytest.param(lambda h: "$".join([*h.split("$")[:4], "abc", h.split("$")[5]]), id="salt-odd-length"),
        pytest.param(lambda h: h[:-2], id="digest-truncated"),
        pytest.param(lambda h: h.rsplit("$", 1)[0] + "$", id="digest-empty"),
    ],
)
def test_malformed_stored_strings_return_false(mangle: object) -> None:
    stored = mangle(_good())  # type: ignore[operator]
    assert verify_password("pw", stored) is False


def test_non_ascii_stored_digest_returns_false() -> None:
    stored = _good().rsplit("$", 1)[0] + "$" + "é" * 64
    assert verify_password("pw", stored) is False


def test_comparison_goes_through_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest  # the module grok2api.passwords calls

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    stored = hash_password("pw")
    assert verify_password("pw", stored) is True
    assert verify_password("nope", stored) is False
    assert len(calls) == 2
    # The stored digest is one side of each comparison.
    assert all(b == bytes.fromhex(stored.split("$")[5]) for _, b in calls)
