"""The operator's interface: one TOML file read into typed, validated, frozen objects.

`load_config(path)` either returns a Config or raises ConfigError with one line per
mistake, each naming the file, the place (section or monitor), the key and the problem.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from probe import checks
from probe.config.cluster import ClusterConfig, check_monitors, parse_cluster
from probe.config.maintenance import parse_maintenance
from probe.config.schema import (
    Duration,
    Invalid,
    Problems,
    at_least,
    convert,
    field_types,
    load,
    load_entries,
    positive,
    show,
    unknown_key_message,
)
from probe.config.storage import StorageConfig, StorageTarget
from probe.config.subscribers import SubscribersConfig, parse_subscribers
from probe.core.units import format_duration
from probe.notifiers import parse_notifiers

MONITOR_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DAY = 86400.0
_WEB = ("http://", "https://")
ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$|^\*$|^https?://\*\.[a-z0-9.-]+$", re.IGNORECASE)


class ConfigError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:8080"
    metrics: bool = True  # serve /metrics (Prometheus) for the operator's scraper
    metrics_token: str = ""  # when set, /metrics wants "Authorization: Bearer <token>"
    admin_token: str = ""  # when empty, no admin route exists at all
    # targets up whenever probe's own network is ("1.1.1.1:53", "https://example.org/"); off when empty
    connectivity: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For names the client (addresses or networks)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def problems(self):
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            yield "listen", f'must be "host:port", e.g. "127.0.0.1:8080" (got {show(self.listen)})'
        for i, target in enumerate(self.connectivity):
            problem = _target_problem(target)
            if problem:
                yield f"connectivity[{i}]", problem
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                yield "trusted_proxies", f'must list IP addresses or networks such as "10.0.0.0/8" (got {show(proxy)})'

    @property
    def proxies(self) -> tuple:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)


def _target_problem(target: str) -> str | None:
    """A connectivity target is an http(s) URL or "host:port"."""
    if target.startswith(_WEB):
        return None if len(target) > len("https://") else f"must name a host (got {show(target)})"
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f'must be "host:port" or an http(s) URL, e.g. "1.1.1.1:53" (got {show(target)})'
    problem = checks.base.host_problem(host.strip("[]"))
    return f"host {problem}" if problem else None


@dataclass(frozen=True)
class PageConfig:
    title: str = "Status"
    description: str = ""
    url: str = ""  # public base URL, for links in feeds and notifications
    logo: str = ""
    link: str = ""
    timezone: str = "UTC"
    language: Literal["en", "zh-CN"] = "en"
    upcoming: Duration = 7 * DAY  # how far ahead the front page lists maintenance (the APIs list more)
    embed_from: tuple[str, ...] = ()  # origins that may frame the page (CSP frame-ancestors); none by default

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def problems(self):
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield "timezone", f'must be an IANA time zone such as "Europe/Berlin" (got {show(self.timezone)})'
        # These end up in href/src attributes: a "javascript:" URL there would run on every visit.
        if self.url and not self.url.lower().startswith(_WEB):
            yield "url", f"must be an http:// or https:// URL (got {show(self.url)})"
        if self.link and not self.link.lower().startswith(_WEB + ("/",)):
            yield "link", f'must be an http:// or https:// URL or a path such as "/" (got {show(self.link)})'
        if self.upcoming < 0:
            yield "upcoming", "must not be negative"
        if self.logo and not self.logo.lower().startswith(_WEB + ("/", "data:image/")):
            yield "logo", ('must be an http:// or https:// URL, a path such as "/logo.png" or a data:image/ URL '
                           f"(got {show(self.logo)})")
        for origin in self.embed_from:  # goes into a header: an origin and nothing else
            if not ORIGIN.match(origin):
                yield "embed_from", f'must list origins such as "https://intranet.example.com" (got {show(origin)})'


@dataclass(frozen=True)
class StatsConfig:
    # How maintenance time counts in availability: left out (default), as up, or as measured.
    maintenance: Literal["excluded", "up", "measured"] = "excluded"


@dataclass(frozen=True)
class MonitorSettings:
    """The keys every monitor has, whatever its type (all may also go in [defaults])."""

    id: str
    type: str
    name: str = ""
    group: str = ""
    description: str = ""
    interval: Duration = 60.0
    timeout: Duration = 10.0
    failure_threshold: int = 2
    success_threshold: int = 1
    reopen_window: Duration = 300.0  # a new failure this soon after a resolve continues that incident
    degraded_latency: Duration | None = None
    public: bool = True
    show_target: bool = False
    notify: tuple[str, ...] = ()  # ids of [[notifiers]] told about this monitor's incidents
    depends_on: tuple[str, ...] = ()  # ids of monitors it needs: while one has an incident, that one speaks for it
    locations: tuple[str, ...] = ()  # [cluster]: where it is checked from (default: every location)
    confirm: int | None = None  # [cluster]: how many of its locations must see it failing (default: a majority)
    source_address: str = ""  # bind outgoing checks to this local address ("" : the system's choice)

    def problems(self):
        yield from positive("interval", self.interval, duration=True)
        yield from positive("timeout", self.timeout, duration=True)
        if 0 < self.interval <= self.timeout:
            yield "timeout", (f"must be shorter than interval "
                              f"(got {format_duration(self.timeout)} ≥ {format_duration(self.interval)})")
        yield from at_least("failure_threshold", self.failure_threshold, 1)
        yield from at_least("success_threshold", self.success_threshold, 1)
        yield from positive("degraded_latency", self.degraded_latency, duration=True)
        yield from at_least("confirm", self.confirm, 1)
        if self.source_address:
            try:
                ipaddress.ip_address(self.source_address)
            except ValueError:
                yield "source_address", f'must be an IP address of this host, e.g. "192.0.2.10" (got {show(self.source_address)})'


COMMON_KEYS = frozenset(field_types(MonitorSettings))


@dataclass(frozen=True)
class MonitorConfig:
    settings: MonitorSettings
    options: Any  # the check type's Options dataclass

    def __getattr__(self, name: str) -> Any:
        # monitor.interval, monitor.name ... read through to the common settings
        return getattr(self.settings, name)

    @property
    def display_name(self) -> str:
        return self.settings.name or self.settings.id

    def make_check(self) -> checks.Check:
        return checks.REGISTRY[self.settings.type](self.options)


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    page: PageConfig = field(default_factory=PageConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    monitors: tuple[MonitorConfig, ...] = ()
    notifiers: tuple[Any, ...] = ()  # notifiers.NotifierConfig, one per [[notifiers]]
    maintenance: tuple[Any, ...] = ()  # probe.maintenance windows, one per [[maintenance]]
    subscribers: SubscribersConfig = field(default_factory=SubscribersConfig)
    cluster: ClusterConfig | None = None  # several instances on one PostgreSQL; None: one process

    @property
    def database_path(self) -> Path:
        """SQLite's file (the default engine): relative paths are relative to the config file."""
        return self.storage_target.path

    @property
    def storage_target(self) -> StorageTarget:
        # Relative paths are relative to the config file, not to wherever probe was started.
        return self.storage.target(self.path.parent)

    def monitor(self, monitor_id: str) -> MonitorConfig | None:
        return next((m for m in self.monitors if m.id == monitor_id), None)


SECTIONS = {"server": ServerConfig, "storage": StorageConfig, "page": PageConfig, "stats": StatsConfig}
TOP_LEVEL = set(SECTIONS) | {"defaults", "monitors", "notifiers", "maintenance", "subscribers", "cluster"}


def load_config(path: str | os.PathLike) -> Config:
    path = Path(path)
    problems = Problems(path.name)
    try:
        data = tomllib.loads(_read_text(path))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path.name}: not valid TOML: {exc}{_quote_hint(path, str(exc))}"]) from None
    config = parse_config(data, path, problems)
    if problems:
        raise ConfigError(problems.lines)
    return config


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([f"{path.name}: not valid UTF-8 at line {line}, column {column} "
                           f"(byte 0x{raw[exc.start]:02x}); save the file as UTF-8"]) from None
    # Windows editors like to start a UTF-8 file with a byte order mark; TOML forbids it.
    return text.removeprefix("\ufeff")


def _quote_hint(path: Path, message: str) -> str:
    """Text pasted from a word processor or chat brings “curly” quotes, which TOML does not know."""
    match = re.search(r"\(at line (\d+)", message)
    lines = path.read_text("utf-8", "replace").splitlines()
    if match and int(match.group(1)) <= len(lines) and any(q in lines[int(match.group(1)) - 1] for q in "“”‘’"):
        return "; the line has typographic quotes (“ ” ‘ ’): TOML strings need straight ones (\" or ')"
    return ""


def parse_config(data: dict[str, Any], path: Path, problems: Problems) -> Config:
    for key in data:
        if key not in TOP_LEVEL:
            problems.add("", None, unknown_key_message(key, TOP_LEVEL) + " at the top level")
    sections = {name: _section(data, name, cls, problems) for name, cls in SECTIONS.items()}
    defaults, reported = _defaults(data.get("defaults", {}), problems)
    monitors = _monitors(data.get("monitors", []), defaults, reported, problems, sections["page"].timezone)
    _check_keys_unique(monitors, problems)
    _check_dependencies(monitors, problems)
    channels = parse_notifiers(data.get("notifiers", []), problems)
    # An entry that is itself invalid was reported; naming it elsewhere is no second mistake.
    windows = parse_maintenance(data.get("maintenance", []), _entry_ids(data.get("monitors")), problems,
                                sections["page"].timezone)
    _check_notify_ids(monitors, _entry_ids(data.get("notifiers")), problems)
    subscribers = parse_subscribers(data.get("subscribers", {}), channels, sections["page"],
                                    {m.group for m in monitors if m.group}, problems)
    cluster = parse_cluster(data.get("cluster"), problems)
    if cluster is not None or "cluster" not in data:  # a broken [cluster] was reported: nothing to check against
        check_monitors(monitors, cluster, defaults, sections["storage"], problems)
    return Config(path=path.resolve(), monitors=monitors, notifiers=channels, maintenance=windows,
                  subscribers=subscribers, cluster=cluster, **sections)


def _check_keys_unique(monitors, problems: Problems) -> None:
    """A passive check's key (a push token) routes reports to one monitor only."""
    owners: dict[str, int] = {}
    for index, monitor in enumerate(monitors):
        check = checks.REGISTRY[monitor.type]
        if not check.passive:
            continue
        key = monitor.make_check().key()
        if key in owners:  # never the key itself in the message: it is a secret
            first = monitors[owners[key]]
            problems.add(f'monitors[{index}] "{monitor.id}"', "token",
                         f'is already used by monitors[{owners[key]}] "{first.id}" (each push monitor needs its own)')
        else:
            owners[key] = index


def _check_dependencies(monitors, problems: Problems) -> None:
    """depends_on names monitors that exist, and never leads back to where it started."""
    index = {m.id: i for i, m in enumerate(monitors)}
    for i, monitor in enumerate(monitors):
        for parent in monitor.depends_on:
            if parent not in index:
                problems.add(f'monitors[{i}] "{monitor.id}"', "depends_on",
                             f"names no [[monitors]] entry (got {show(parent)})")
    graph = {m.id: [p for p in m.depends_on if p in index] for m in monitors}
    for cycle in _cycles(graph):
        first = min(cycle, key=index.__getitem__)  # reported once, at the cycle's first monitor in the file
        at = cycle.index(first)
        path = cycle[at:] + cycle[:at] + [first]
        problems.add(f'monitors[{index[first]}] "{first}"', "depends_on", "makes a cycle: " + " → ".join(path))


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each cycle of the graph once (as the list of its members, in order), found by depth-first search."""
    found, seen, state = [], set(), {}
    for start in graph:
        if start in state:
            continue
        stack = [(start, iter(graph[start]))]
        path, state[start] = [start], "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = "done"
            elif state.get(child) == "open":
                cycle = path[path.index(child):]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append(cycle)
            elif child not in state:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(graph[child])))
    return found


def _entry_ids(items: Any) -> set[str]:
    """The ids written in [[section]] entries, valid or not."""
    return {t["id"] for t in items if isinstance(t, dict) and isinstance(t.get("id"), str)} \
        if isinstance(items, list) else set()


def _check_notify_ids(monitors, notifier_ids: set[str], problems: Problems) -> None:
    for index, monitor in enumerate(monitors):
        for notifier_id in monitor.notify:
            if notifier_id not in notifier_ids:
                problems.add(f'monitors[{index}] "{monitor.id}"', "notify",
                             f"names no [[notifiers]] entry (got {show(notifier_id)})")


def _section(data: dict, name: str, cls: type, problems: Problems) -> Any:
    table = data.get(name, {})
    if not isinstance(table, dict):
        problems.add("", name, "must be a table ([" + name + "])")
        return cls()
    return load(cls, table, problems, name) or cls()


def _key_types() -> dict[str, list[Any]]:
    """Every key a monitor may have, with the annotations it has in each type using it."""
    keys: dict[str, list[Any]] = {k: [t] for k, t in field_types(MonitorSettings).items()}
    for check in checks.REGISTRY.values():
        for key, tp in field_types(check.Options).items():
            keys.setdefault(key, []).append(tp)
    return keys


def _defaults(table: Any, problems: Problems) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """Keys in [defaults] are checked once here, so a bad default is reported once, at
    `defaults`: its type, and its value against the rules every monitor keeps. Returns the
    defaults and the (key, message) of each mistake reported (monitors inheriting the key
    would say it again)."""
    if not isinstance(table, dict):
        problems.add("", "defaults", "must be a table ([defaults])")
        return {}, set()
    known = _key_types()
    good = {}
    for key, value in table.items():
        if key in ("id", "name", "type") or key not in known:
            problems.add("defaults", None, unknown_key_message(key, known)
                         if key not in known else f'"{key}" cannot have a default')
            continue
        errors = []
        for tp in known[key]:  # e.g. `expect` is text for tcp and a list for dns
            try:
                convert(tp, value)
                break
            except Invalid as exc:
                errors.append(str(exc))
        else:
            problems.add("defaults", key, errors[0])
            continue
        good[key] = value
    return good, _default_values_problems(good, problems)


class _Recorder(Problems):
    """Problems kept as (key, message), for `_defaults` and `_Quiet`."""

    def __init__(self) -> None:
        super().__init__("")
        self.found: list[tuple[str | None, str]] = []

    def add(self, place: str, key: str | None, message: str) -> None:
        self.found.append((key, message))
        super().add(place, key, message)


def _default_values_problems(defaults: dict[str, Any], problems: Problems) -> set[tuple[str, str]]:
    """The settings every monitor has, checked with the defaults' values alone."""
    settings = {k: v for k, v in defaults.items() if k in COMMON_KEYS}
    scratch = _Recorder()
    load(MonitorSettings, {"id": "defaults", "type": "defaults", **settings}, scratch, "defaults")
    reported = {(key, message) for key, message in scratch.found if key in settings}
    for key, message in sorted(reported):
        problems.add("defaults", key, message)
    return reported


class _Quiet:
    """`problems` for one monitor, leaving out what `defaults` already said of a key the
    monitor inherits (one mistake, one line, where it was made)."""

    def __init__(self, problems: Problems, reported: set[tuple[str, str]], own_keys) -> None:
        self.problems, self.reported, self.own = problems, reported, set(own_keys)
        self.lines = problems.lines

    def add(self, place: str, key: str | None, message: str) -> None:
        if (key, message) in self.reported and key not in self.own:
            return
        self.problems.add(place, key, message)


def _monitors(items: Any, defaults: dict[str, Any], reported: set[tuple[str, str]], problems: Problems,
              timezone: str = "UTC") -> tuple[MonitorConfig, ...]:
    return load_entries(items, "monitors", problems,
                        lambda table, place: _monitor(table, defaults, _Quiet(problems, reported, table), place,
                                                      timezone))


def _monitor(table: dict, defaults: dict, problems: Problems, place: str,
             timezone: str = "UTC") -> MonitorConfig | None:
    kind = table.get("type")
    check = checks.REGISTRY.get(kind) if isinstance(kind, str) else None
    if check is None:
        known = " | ".join(checks.REGISTRY)
        problems.add(place, "type", "is required" if kind is None else f"must be one of {known} (got {show(kind)})")
        return None
    option_keys = set(field_types(check.Options))
    page_zone = {"timezone": timezone} if "timezone" in option_keys else {}  # a schedule's default zone
    merged = page_zone | {k: v for k, v in defaults.items() if k in COMMON_KEYS or k in option_keys} | table
    before = len(problems.lines)
    for key in merged:
        if key not in COMMON_KEYS and key not in option_keys:
            owners = [t for t, c in checks.REGISTRY.items() if key in field_types(c.Options)]
            hint = f" (it is a key of {' and '.join(owners)} monitors)" if owners else ""
            problems.add(place, None, unknown_key_message(key, COMMON_KEYS | option_keys)
                         + f" for type {show(kind)}{hint}")
    settings = load(MonitorSettings, {k: v for k, v in merged.items() if k in COMMON_KEYS}, problems, place)
    options = load(check.Options, {k: v for k, v in merged.items() if k in option_keys}, problems, place)
    if settings is not None and not MONITOR_ID.match(settings.id):
        problems.add(place, "id", f"must match [a-z0-9][a-z0-9_-]* (got {show(settings.id)})")
    if len(problems.lines) > before or settings is None or options is None:
        return None
    for key, message in check.problems_with(settings, options):
        problems.add(place, key, message)
    rhythm = check.rhythm(options)
    if rhythm is not None and "interval" in table:
        problems.add(place, "interval", f"does not apply to type {show(kind)}: its schedule or period sets when "
                                        "results are expected")
    if len(problems.lines) > before:
        return None
    if rhythm is not None:  # the results' rhythm is the check's own: it stands for interval everywhere
        settings = dataclasses.replace(settings, interval=rhythm)
    return MonitorConfig(settings=settings, options=options)
