"""TLS helpers shared by the HTTP and TCP checks: contexts, certificate expiry, error wording."""
from __future__ import annotations

import functools
import ssl
import time
from datetime import datetime, timezone
from typing import Any

from probe.core.models import CheckResult

DAY = 86400
# Days left at which notifiers hear of an expiring certificate (`cert_expiry_notify`).
# Not 30: certbot renews at 30 days left, so a 30-day notice would precede most renewals.
NOTIFY_DAYS = (14, 7, 1)


@functools.cache
def client_context(verify: bool) -> ssl.SSLContext:
    # Building a context loads the CA store (milliseconds of CPU): make two, once.
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def certificate_details(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any]:
    """Expiry and names of the peer's certificate, as far as they can be read."""
    if ssl_object is None:
        return {}
    details: dict[str, Any] = {"tls_version": ssl_object.version()}
    cert = ssl_object.getpeercert()
    if cert:
        not_after = ssl.cert_time_to_seconds(cert["notAfter"])
        details["cert_subject"] = _common_name(cert.get("subject", ()))
    else:
        # Unverified connections hide the parsed certificate; read the DER if we can.
        not_after = _not_after_from_der(ssl_object.getpeercert(binary_form=True))
    if not_after is not None:
        details["cert_expires_at"] = datetime.fromtimestamp(not_after, timezone.utc).isoformat()
        details["cert_expires_ts"] = int(not_after)
    return details


def expiry_verdict(details: dict[str, Any], threshold_days: int | None,
                   latency_ms: float) -> CheckResult | None:
    """Down if the certificate has expired, degraded if it expires within the threshold.

    An expired certificate only gets this far with verification off; it is down all
    the same, because every client that does verify is refused.
    """
    expires = details.get("cert_expires_ts")
    if expires is None:
        return None
    left = expires - time.time()
    if left <= 0:
        return CheckResult.down(f"TLS certificate expired {_days(-left)} ago", latency_ms, **details)
    if threshold_days is None or left >= threshold_days * DAY:
        return None
    return CheckResult.degraded(
        f"TLS certificate expires in {_days(left)} (threshold {_days(threshold_days * DAY)})",
        latency_ms, **details)


def notify_days_problems(days: tuple[int, ...]):
    """(key, message) pairs for `cert_expiry_notify`: whole days of at least 1, each once."""
    for index, value in enumerate(days):
        if value < 1:
            yield f"cert_expiry_notify[{index}]", f"must be at least 1 day (got {value})"
    twice = sorted({value for value in days if days.count(value) > 1}, reverse=True)
    if twice:
        yield "cert_expiry_notify", f"lists {twice[0]} more than once"


def describe_ssl_error(exc: BaseException) -> str:
    """Turn the ssl module's wording into something an operator can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or exc.reason or str(exc)
        if "expired" in message:
            return "certificate has expired"
        return f"certificate not trusted ({message})"
    reason = getattr(exc, "reason", None)
    return (reason or str(exc) or exc.__class__.__name__).replace("_", " ").lower()


def _days(seconds: float) -> str:
    days = seconds / DAY
    if days < 1:
        hours = max(1, round(seconds / 3600))
        return f"{hours} hour" + ("" if hours == 1 else "s")
    return f"{int(days)} day" + ("" if int(days) == 1 else "s")


def _common_name(subject) -> str | None:
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def _not_after_from_der(der: bytes | None) -> float | None:
    """notAfter of a DER certificate (RFC 5280 4.1), read by hand.

    The ssl module parses certificates only once verified; walking the few DER
    headers down to Validity saves a dependency on a full X.509 library.
    """
    try:
        _, certificate, _ = _der_item(der or b"", 0)   # Certificate
        _, tbs, _ = _der_item(der, certificate)          # tbsCertificate
        tag, start, end = _der_item(der, tbs)
        if tag == 0xA0:                                  # [0] version, optional
            tag, start, end = _der_item(der, end)        # serialNumber
        for _ in range(3):                               # signature, issuer, validity
            tag, start, end = _der_item(der, end)
        tag, start, end = _der_item(der, start)          # notBefore
        tag, start, end = _der_item(der, end)            # notAfter
        text = der[start:end].decode("ascii")
        fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"  # UTCTime | GeneralizedTime
        return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def _der_item(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length
