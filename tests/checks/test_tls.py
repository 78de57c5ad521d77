"""TLS helpers: the hand-written DER walk agrees with a full X.509 parser."""
import datetime
import ssl

import pytest
import trustme
from cryptography import x509

from probe.checks.tls import _not_after_from_der


@pytest.mark.parametrize("not_after", [
    datetime.datetime(2031, 5, 17, 8, 30, 15, tzinfo=datetime.timezone.utc),   # UTCTime
    datetime.datetime(2051, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),      # GeneralizedTime (≥ 2050)
    datetime.datetime(2020, 2, 29, 23, 59, 59, tzinfo=datetime.timezone.utc),  # already expired
])
def test_not_after_is_read_from_the_raw_certificate(not_after):
    cert = trustme.CA().issue_cert("127.0.0.1", not_after=not_after,
                                   not_before=not_after - datetime.timedelta(days=90))
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    assert _not_after_from_der(der) == not_after.timestamp()
    assert x509.load_der_x509_certificate(der).not_valid_after_utc == not_after


@pytest.mark.parametrize("der", [b"", b"\x30\x82\xff\xff", b"\x30\x03\x02\x01", b"not a certificate"])
def test_garbage_gives_no_expiry_rather_than_an_error(der):
    assert _not_after_from_der(der) is None
