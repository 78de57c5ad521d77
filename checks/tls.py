"""TLS helpers shared by the HTTP and TCP checks: contexts, certificate expiry, error wording."""
from __future__ import annotations

import functools
import ssl
import time
from datetime import datetime, timezone
from typing import Any

DAY = 86400


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


def expiry_verdict(details: dict[str, Any], threshold_days: int | None) -> str | None:
    """A reason string when the certificate expires within the threshold, else None."""
    expires = details.get("cert_expires_ts")
    if threshold_days is None or expires is None:
        return None
    left = expires - time.time()
    if left >= threshold_days * DAY:
        return None
    if left <= 0:
        return f"TLS certificate expired {_days(-left)} ago"
    return f"TLS certificate expires in {_days(left)} (threshold {_days(threshold_days * DAY)})"


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
    if not der:
        return None
    try:
        from cryptography import x509  # optional: only for verify_tls = false
    except ImportError:
        return None
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except ValueError:
        return None
