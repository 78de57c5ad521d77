"""The operator's interface: one TOML file read into typed, validated, frozen objects.

`load_config(path)` either returns a Config or raises ConfigError with one line per
mistake, each naming the file, the place (section or monitor), the key and the problem.
"""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from probe import checks
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
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                yield "trusted_proxies", f'must list IP addresses or networks such as "10.0.0.0/8" (got {show(proxy)})'

    @property
    def proxies(self) -> tuple:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)


@dataclass(frozen=True)
class StorageConfig:
    path: str = "probe.db"
    raw_retention: Duration = 30 * DAY
    rollup_retention: Duration = 400 * DAY

    def problems(self):
        yield from at_least("raw_retention", self.raw_retention, 2 * DAY, duration=True)
        yield from at_least("rollup_retention", self.rollup_retention, 400 * DAY, duration=True)


@dataclass(frozen=True)
class PageConfig:
    title: str = "Status"
    description: str = ""
    url: str = ""  # public base URL, for links in feeds and notifications
    logo: str = ""
    link: str = ""
    timezone: str = "UTC"
    language: Literal["en", "zh-CN"] = "en"
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

    def problems(self):
        yield from positive("interval", self.interval, duration=True)
        yield from positive("timeout", self.timeout, duration=True)
        if 0 < self.interval <= self.timeout:
            yield "timeout", (f"must be shorter than interval "
                              f"(got {format_duration(self.timeout)} ≥ {format_duration(self.interval)})")
        yield from at_least("failure_threshold", self.failure_threshold, 1)
        yield from at_least("success_threshold", self.success_threshold, 1)
        yield from positive("degraded_latency", self.degraded_latency, duration=True)


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

    @property
    def database_path(self) -> Path:
        # Relative paths are relative to the config file, not to wherever probe was started.
        path = Path(os.path.expanduser(self.storage.path))
        return path if path.is_absolute() else self.path.parent / path

    def monitor(self, monitor_id: str) -> MonitorConfig | None:
        return next((m for m in self.monitors if m.id == monitor_id), None)


SECTIONS = {"server": ServerConfig, "storage": StorageConfig, "page": PageConfig, "stats": StatsConfig}
TOP_LEVEL = set(SECTIONS) | {"defaults", "monitors", "notifiers", "maintenance", "subscribers"}


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
    defaults = _defaults(data.get("defaults", {}), problems)
    monitors = _monitors(data.get("monitors", []), defaults, problems)
    channels = parse_notifiers(data.get("notifiers", []), problems)
    windows = parse_maintenance(data.get("maintenance", []), {m.id for m in monitors}, problems,
                                sections["page"].timezone)
    _check_notify_ids(monitors, {n.id for n in channels}, problems)
    subscribers = parse_subscribers(data.get("subscribers", {}), channels, sections["page"],
                                    {m.group for m in monitors if m.group}, problems)
    return Config(path=path.resolve(), monitors=monitors, notifiers=channels, maintenance=windows,
                  subscribers=subscribers, **sections)


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


def _defaults(table: Any, problems: Problems) -> dict[str, Any]:
    """Keys in [defaults] are checked once here, so a bad default is reported once."""
    if not isinstance(table, dict):
        problems.add("", "defaults", "must be a table ([defaults])")
        return {}
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
    return good


def _monitors(items: Any, defaults: dict[str, Any], problems: Problems) -> tuple[MonitorConfig, ...]:
    return load_entries(items, "monitors", problems,
                        lambda table, place: _monitor(table, defaults, problems, place))


def _monitor(table: dict, defaults: dict, problems: Problems, place: str) -> MonitorConfig | None:
    kind = table.get("type")
    check = checks.REGISTRY.get(kind) if isinstance(kind, str) else None
    if check is None:
        known = " | ".join(checks.REGISTRY)
        problems.add(place, "type", "is required" if kind is None else f"must be one of {known} (got {show(kind)})")
        return None
    option_keys = set(field_types(check.Options))
    merged = {k: v for k, v in defaults.items() if k in COMMON_KEYS or k in option_keys} | table
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
    if len(problems.lines) > before:
        return None
    return MonitorConfig(settings=settings, options=options)
