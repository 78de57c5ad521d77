"""What every check type shares: its class shape and the context the caller hands it."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from probe.config.schema import show
from probe.core.models import CheckResult

HOSTNAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$", re.I)

if TYPE_CHECKING:
    import aiohttp


@dataclass
class Progress:
    """Where a running check is, so that a timeout can say where it hung.

    A check sets `phase` ("connecting to 10.0.0.5:443") as it goes and may put partial
    measurements into `details`; the caller reads both if the deadline passes.
    `on_timeout` may replace the generic wording, with "{timeout}" filled in.
    """

    phase: str = "starting"
    on_timeout: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    refine: Callable[[str], str] | None = None  # a finer phase, found out only when asked (HTTP: TCP or TLS)

    def timeout_reason(self, timeout: str) -> str:
        if self.on_timeout:
            return self.on_timeout.format(timeout=timeout)
        phase = self.refine(self.phase) if self.refine else self.phase
        return f"timed out after {timeout} while {phase}"


@dataclass
class CheckContext:
    """Handed to `Check.run` by the caller (scheduler or `probe check`)."""

    timeout: float  # seconds; the caller enforces it, checks may size sub-steps by it
    progress: Progress
    http: "aiohttp.ClientSession | None" = None  # shared by all HTTP checks
    icmp_privileged: bool | None = None  # None: no ICMP socket is permitted here


class Check:
    """One check type. Subclasses set `type` and `Options` and implement `run`.

    An instance is made once per monitor (so it can precompile patterns) and run on
    every tick. `run` returns a CheckResult and must not raise for anything the
    target does; the caller turns a stray exception into a "down" result anyway.
    """

    type: ClassVar[str]
    Options: ClassVar[type]
    # What the caller provides, shared by every check that needs it: CheckContext field ->
    # a function that makes it once (e.g. {"http": make_session}). The runner fills these in
    # and closes what has a close(); a check names its needs instead of the runner knowing types.
    needs: ClassVar[dict[str, Callable[[], Any]]] = {}

    def __init__(self, options: Any) -> None:
        self.options = options

    @classmethod
    def problems_with(cls, settings: Any, options: Any):
        """(key, message) pairs for rules that involve the common settings (e.g. timeout)."""
        return ()

    def target(self) -> str:
        """The address checked, as an operator would name it (URL, host:port, name)."""
        raise NotImplementedError

    async def run(self, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError


def host_problem(host: str) -> str | None:
    """Why `host` is neither a host name nor an IP address, in words; None if it is one."""
    if not host:
        return "must not be empty"
    if "://" in host:
        return f"must be a host name or IP address, not a URL (got {show(host)})"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and HOSTNAME.match(name):
        return f"must be a host name or IP address without a port; put the port in `port` (got {show(host)})"
    try:
        ascii_name = host.encode("idna").decode("ascii")  # "bücher.de" is "xn--bcher-kva.de" on the wire
    except UnicodeError:
        ascii_name = ""
    if not HOSTNAME.match(ascii_name) or len(ascii_name) > 253:
        return f"must be a host name or IP address (got {show(host)})"
    if all(label.isdigit() for label in ascii_name.rstrip(".").split(".")):
        # no top-level domain is all digits: this was meant as an IPv4 address
        return f"is not a valid IPv4 address (got {show(host)})"
    return None
