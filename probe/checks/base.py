"""What every check type shares: its class shape and the context the caller hands it."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from probe.config.schema import show
from probe.core.models import CheckResult, ResultRecord

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
    monitor_id: str = ""
    http: "aiohttp.ClientSession | None" = None  # shared by all HTTP checks
    icmp_privileged: bool | None = None  # None: no ICMP socket is permitted here
    history: "History | None" = None  # what was stored about the monitor (passive checks report it)
    source_address: str = ""  # the local address outgoing connections bind to ("": the system's choice)


@dataclass(frozen=True, slots=True)
class Ping:
    """One report fed to a passive check by the job it watches (a cron job's curl, a host's push)."""

    at_ms: int
    kind: Literal["success", "fail", "start"]
    message: str = ""  # what the job said: a request body or a `msg` parameter, already cut to size
    exit_status: int | None = None
    latency_ms: float | None = None  # when the job measured itself (Uptime Kuma's `ping=`)


@dataclass(frozen=True, slots=True)
class FedState:
    """What a passive check knows between feeds. It is rebuilt from the monitor's newest result
    (and a run's pending start), so a restart or a reload loses nothing."""

    since_ms: int  # the newest result (or when watching began): the next expected report counts from it
    last_ping_ms: int | None = None  # the newest report that ended a run, success or failure
    started_ms: int | None = None  # a run that said it started and has not yet said how it ended


@dataclass(frozen=True, slots=True)
class Due:
    """The result a passive check records by itself when a report does not come in time."""

    fire_ms: int  # when to record it (the slot plus its grace, or a run's deadline)
    ts_ms: int  # the time it is recorded at: when the report was due
    result: CheckResult
    then: FedState  # the state once it is recorded


class History:
    """What the caller stored about a monitor. The default knows nothing; `probe check` hands
    passive checks one that reads the database."""

    async def last(self, monitor_id: str) -> tuple[ResultRecord | None, int | None]:
        """The monitor's newest result and the start of a run not yet ended (ms), if any."""
        return None, None


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
    # Monitors bound to a source address share one made with it: make(source_address).
    needs: ClassVar[dict[str, Callable[..., Any]]] = {}
    # A passive check is fed, not run: nobody schedules it. Reports reach it through `feed`
    # (routed by `key()`, the secret in its URL), and when one is late the caller records
    # what `due()` says at its time. `run` (for `probe check`) reports the stored state.
    passive: ClassVar[bool] = False

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

    # ---- passive checks only ----

    @classmethod
    def rhythm(cls, options: Any) -> float | None:
        """Seconds between expected results when the options set them (a passive check's
        schedule), which then stand for the monitor's `interval`; None: `interval` rules."""
        return None

    def key(self) -> str:
        """The secret that routes a report to this check."""
        raise NotImplementedError

    def restore(self, last: ResultRecord | None, started_ms: int | None, watching_since_ms: int) -> FedState:
        """The state from the monitor's newest result and a run's pending start; slots before
        `watching_since_ms` (when probe started) are not judged."""
        raise NotImplementedError

    def feed(self, ping: Ping, state: FedState) -> tuple[CheckResult | None, FedState]:
        """A report in: the result to record at `ping.at_ms` (None for a start) and the new state."""
        raise NotImplementedError

    def due(self, state: FedState) -> Due | None:
        """What to record if no report comes first; None: nothing is expected."""
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
