"""Email addresses, checked and written one way wherever they come from: the subscribe form,
the admin API, the config file and rows read back from the database.

email-validator does the checking (RFC 5321/5322 syntax, length limits, IDNA), with no DNS
look-up: a look-up would make the form slow and say whether a domain exists, and the SMTP
server is the judge of deliverability anyway. What it refuses is what an SMTP client cannot
send to (a trailing dot, `a..b`, a quoted local part, a domain literal) or should not
(a bare host name): such an address must never reach the outbox.
"""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class AddressError(ValueError):
    """Not an address mail can be sent to; the message is the reason, in one sentence."""


def normal_address(text: str) -> str:
    """The one spelling of an address: the domain in ASCII (IDNA), everything lower case.

    The local part is lower-cased too although RFC 5321 lets a server tell `Bob` from `bob`:
    no mail system in use does, and one spelling per mailbox is what makes the per-address
    rate limit and the one-row-per-subscriber rule hold."""
    try:
        found = validate_email(text.strip(), check_deliverability=False,
                               allow_smtputf8=False,  # any SMTP server can take it
                               test_environment=True)  # *.test (RFC 2606) is allowed: staging and tests use it
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    return found.ascii_email.lower()
