"""Signed tokens and the subscribe rate limiter, on their own."""
import pytest

from probe.notify.subscribers.rules import (
    RequestLimiter,
    TokenError,
    normal_email,
    sign,
    verify,
)

SECRET = "k" * 43


def test_a_token_verifies_for_its_purpose_address_and_time_only():
    token = sign(SECRET, "c", 7, "a@example.com", 2_000)
    verify(SECRET, token, "c", "a@example.com", now_s=1_999)
    for args in [(SECRET, token, "u", "a@example.com"), (SECRET, token, "c", "b@example.com"),
                 ("other" * 9, token, "c", "a@example.com"), (SECRET, token, "c", None)]:
        with pytest.raises(TokenError, match="invalid"):
            verify(*args, now_s=1_999)
    with pytest.raises(TokenError, match="expired"):
        verify(SECRET, token, "c", "a@example.com", now_s=2_001)


def test_an_unsubscribe_token_without_expiry_never_expires():
    verify(SECRET, sign(SECRET, "u", 7, "a@example.com", 0), "u", "a@example.com", now_s=10**12)


@pytest.mark.parametrize("token", ["", "c.7.2000", "c.x.2000.mac", "c.7.2000.mac.extra", "c.7.-1.mac"])
def test_malformed_tokens_are_invalid(token):
    with pytest.raises(TokenError, match="invalid"):
        verify(SECRET, token, "c", "a@example.com", now_s=0)


def test_the_limiter_allows_n_an_hour_per_key_then_forgets():
    limiter = RequestLimiter(3, window_s=3600)
    assert [limiter.allow("a", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limiter.allow("b", now=3)
    assert limiter.allow("a", now=3601)


def test_the_limiter_keeps_a_bounded_number_of_keys():
    limiter = RequestLimiter(1, keys=2)
    for key in "abc":
        limiter.allow(key, now=0)
    assert limiter.allow("a", now=1)  # "a" was forgotten first


@pytest.mark.parametrize("text,expected", [(" Bob@Example.COM ", "bob@example.com"), ("no-at-sign", None),
                                           ("a@b.c\r\nBcc: x@y.z", None), ("a@localhost", None),
                                           ("x" * 250 + "@e.com", None)])
def test_addresses_are_normalised_or_refused(text, expected):
    assert normal_email(text) == expected
