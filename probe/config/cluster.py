"""[cluster]: several `probe run` instances on one PostgreSQL database, checking from several locations.

One config file serves every instance; what differs per instance (its name, its location, its
source address) comes from the environment through `${NAME}`. Without [cluster] nothing of this
applies: one process, as always.

A monitor is checked from `locations` (default: every location of the cluster) and is down when
`confirm` of them see it failing (default: a majority of its locations).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.config.schema import Duration, Problems, at_least, load, show
from probe.config.storage import StorageConfig

INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LOCATION = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class ClusterConfig:
    instance: str  # unique name of this process, e.g. "fra-1"
    location: str  # where this process checks from, e.g. "fra"
    # every location: a list of ids, or a table id -> the name the page shows ({ fra = "Frankfurt" })
    locations: tuple[str, ...] | dict[str, str] = ()
    heartbeat: Duration = 2.0  # membership and leadership are renewed this often; 3 missed: gone

    @property
    def names(self) -> dict[str, str]:
        """Location id -> the name the page shows, in the order the config lists them."""
        if isinstance(self.locations, dict):
            return {key: name or key for key, name in self.locations.items()}
        return {key: key for key in self.locations}

    def problems(self):
        if not INSTANCE.match(self.instance):
            yield "instance", ("must be a name of letters, digits, '.', '_' or '-' (at most 63), e.g. \"fra-1\" "
                               f"(got {show(self.instance)})")
        if not self.names:
            yield "locations", 'must list every location, e.g. ["fra", "sgp"]'
        for key in self.names:
            if not LOCATION.match(key):
                yield "locations", f"must be ids matching [a-z0-9][a-z0-9_-]* (got {show(key)})"
        if isinstance(self.locations, tuple) and len(set(self.locations)) != len(self.locations):
            yield "locations", "lists a location twice"
        if self.names and self.location not in self.names:
            yield "location", f"must be one of locations ({', '.join(self.names)}) (got {show(self.location)})"
        yield from at_least("heartbeat", self.heartbeat, 0.1, duration=True)
        if self.heartbeat > 60:
            yield "heartbeat", f"must be at most 1m (got {show(self.heartbeat)}s)"


def monitor_locations(monitor: Any, cluster: ClusterConfig | None) -> tuple[str, ...]:
    """Where a monitor is checked from: its own `locations`, or every location of the cluster."""
    if cluster is None:
        return ()
    return monitor.locations or tuple(cluster.names)


def confirm_needed(monitor: Any, cluster: ClusterConfig | None) -> int:
    """How many of its locations must see a monitor failing: `confirm`, or a majority."""
    count = len(monitor_locations(monitor, cluster))
    return monitor.confirm if monitor.confirm is not None else count // 2 + 1


def parse_cluster(table: Any, problems: Problems) -> ClusterConfig | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        problems.add("", "cluster", "must be a table ([cluster])")
        return None
    return load(ClusterConfig, table, problems, "cluster")


def check_monitors(monitors, cluster: ClusterConfig | None, defaults: dict[str, Any], storage: StorageConfig,
                   problems: Problems) -> None:
    """What [cluster] asks of the rest of the file: PostgreSQL storage, and monitors' `locations` and
    `confirm` that name its locations. A mistake inherited from [defaults] is reported once, there."""
    if cluster is not None and _storage_kind(storage) not in ("postgresql", "unknown"):
        problems.add("", "cluster", 'needs PostgreSQL storage ([storage] url = "postgresql://..."): '
                                    "several instances share one database, and a SQLite file serves one process")
    for key in ("locations", "confirm"):
        if cluster is None and key in defaults:
            problems.add("defaults", key, "needs a [cluster] section (several instances checking from several "
                                          "locations)")
    said = set()
    for index, monitor in enumerate(monitors):
        place = f'monitors[{index}] "{monitor.id}"'
        for key, message in _monitor_problems(monitor, cluster):
            inherited = key in defaults and getattr(monitor, key) == _default(defaults[key])
            if inherited and cluster is None:
                continue  # said at defaults already
            where = "defaults" if inherited else place
            if (where, key, message) not in said:
                said.add((where, key, message))
                problems.add(where, key, message)


def _storage_kind(storage: StorageConfig) -> str:
    try:
        return storage.target(Path(".")).kind
    except ValueError:
        return "unknown"  # a bad url: reported at [storage] already


def _default(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _monitor_problems(monitor, cluster: ClusterConfig | None):
    if cluster is None:
        if monitor.locations:
            yield "locations", "needs a [cluster] section (several instances checking from several locations)"
        if monitor.confirm is not None:
            yield "confirm", "needs a [cluster] section (several instances checking from several locations)"
        return
    for location in monitor.locations:
        if location not in cluster.names:
            yield "locations", f"must name locations of [cluster] ({', '.join(cluster.names)}) (got {show(location)})"
    if len(set(monitor.locations)) != len(monitor.locations):
        yield "locations", "lists a location twice"
    count = len(monitor_locations(monitor, cluster))
    if monitor.confirm is not None and monitor.confirm > count:
        yield "confirm", f"must be at most the number of its locations, {count} (got {monitor.confirm})"
