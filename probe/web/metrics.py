"""/metrics for the operator's Prometheus: every monitor (private ones only behind metrics_token).

Written with the official prometheus_client. Values are read at scrape time (no gauge
is touched on the check path); the availability figures come from the same rollups as
the page. `[server] metrics = false` removes the route; `metrics_token` requires a
bearer token. Without a token the route is as public as the page, so private monitors
(their ids, names and groups are labels) are left out until one is set.
"""
from __future__ import annotations

import hmac
import time

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
)

from probe import __version__
from probe.core.units import now_ms
from probe.view.public import WINDOWS
from probe.web.keys import PROBE

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("up", "degraded", "down", "maintenance")


def add_routes(app: web.Application, probe) -> None:
    if probe.config.server.metrics:
        app.router.add_get("/metrics", metrics)


async def metrics(request: web.Request) -> web.Response:
    probe = request.app[PROBE]
    token = probe.config.server.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return web.Response(status=401, text="a valid bearer token is required\n",
                                headers={"WWW-Authenticate": 'Bearer realm="probe metrics"'})
    snapshot = await Snapshot.take(probe)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE,
                                                                  "Cache-Control": "no-store"})


def shown(config) -> list:
    return [m for m in config.monitors if m.public or config.server.metrics_token]


class Snapshot:
    """Everything a scrape reports, gathered first (async), then collected (sync)."""

    def __init__(self, probe, availability: dict[str, dict[str, float | None]], now: int,
                 deliveries: dict[tuple[str, str], int]) -> None:
        self.probe, self.availability, self.now = probe, availability, now
        self.monitors = shown(probe.config)
        self.deliveries = deliveries

    @classmethod
    async def take(cls, probe) -> "Snapshot":
        now = now_ms()
        ids = [m.id for m in shown(probe.config)]
        mode = probe.config.stats.maintenance
        availability: dict[str, dict[str, float | None]] = {m: {} for m in ids}
        spans = {window: (now - span, now) for window, span in WINDOWS.items()}
        for window, found in (await probe.stats.durations_many(ids, spans, now)).items():
            for monitor_id, d in found.items():
                availability[monitor_id][window] = d.availability(mode)
        return cls(probe, availability, now, await probe.notify.outbox.counts())

    def collect(self):
        labels = ["monitor", "name", "type", "group"]
        up = GaugeMetricFamily("probe_monitor_up", "1 if the last check was up or degraded, 0 if down", labels=labels)
        state = StateSetMetricFamily("probe_monitor_status", "Status of the last check", labels=labels)
        latency = GaugeMetricFamily("probe_monitor_latency_seconds", "Latency of the last check", labels=labels)
        late = GaugeMetricFamily("probe_monitor_check_lateness_seconds",
                                 "How late the last check started after its scheduled time", labels=labels)
        last = GaugeMetricFamily("probe_monitor_last_check_timestamp_seconds", "Start of the last check",
                                 labels=labels)
        expiry = GaugeMetricFamily("probe_monitor_certificate_expiry_timestamp_seconds",
                                   "notAfter of the certificate seen by the last check", labels=labels)
        checks = CounterMetricFamily("probe_monitor_checks", "Checks since this process started, by result",
                                     labels=labels + ["result"])
        ratio = GaugeMetricFamily("probe_monitor_availability_ratio",
                                  "Availability over a trailing window (README: method)", labels=labels + ["window"])
        for m in self.monitors:
            values = [m.id, m.display_name, m.type, m.group]
            record = self.probe.latest.get(m.id)
            if record is not None:
                up.add_metric(values, 0 if record.status.label == "down" else 1)
                current = "maintenance" if record.in_maintenance else record.status.label
                state.add_metric(values, {s: s == current for s in STATES})
                if record.latency_ms is not None:
                    latency.add_metric(values, record.latency_ms / 1000)
                late.add_metric(values, max(0, record.late_ms) / 1000)
                last.add_metric(values, record.ts_ms / 1000)
                if "cert_expires_ts" in record.details:
                    expiry.add_metric(values, record.details["cert_expires_ts"])
            for result in ("up", "degraded", "down"):
                checks.add_metric(values + [result], self.probe.check_counts.get((m.id, result), 0))
            for window, value in self.availability.get(m.id, {}).items():
                if value is not None:
                    ratio.add_metric(values + [window], value)
        info = InfoMetricFamily("probe_build", "probe version")
        info.add_metric([], {"version": __version__})
        started = GaugeMetricFamily("probe_start_time_seconds", "When this probe process started",
                                    value=(self.probe.started_ms or time.time() * 1000) / 1000)
        writable = GaugeMetricFamily("probe_database_writable", "1 while the database takes writes",
                                     value=1 if self.probe.store.healthy else 0)
        pending = GaugeMetricFamily("probe_database_pending_results",
                                    "Results waiting in memory for the database to take them",
                                    value=self.probe.store.pending_results)
        dropped = CounterMetricFamily("probe_database_dropped_results",
                                      "Results dropped because the database took no writes for too long",
                                      value=self.probe.store.dropped_results)
        yield from (up, state, latency, late, last, expiry, checks, ratio, info, started, writable, pending, dropped,
                    self._deliveries())
        if self.probe.connectivity.enabled:
            yield GaugeMetricFamily("probe_connectivity_ok",
                                    "1 while a [server] connectivity target answers (probe's own network is up)",
                                    value=1 if self.probe.connectivity.ok else 0)
        yield from self._reload()
        yield from self._cluster()

    def _cluster(self):
        """[cluster] Who this instance is, whether it leads, and the live members it sees per location."""
        roles = self.probe.roles
        if roles is None:
            return
        health = roles.health()
        leader = GaugeMetricFamily("probe_cluster_leader", "1 while this instance leads the cluster",
                                   labels=["instance", "location"])
        leader.add_metric([health["instance"], health["location"]], 1 if health["leader"] else 0)
        members = GaugeMetricFamily("probe_cluster_members", "Live instances this instance sees, by location",
                                    labels=["location"])
        for location in self.probe.config.cluster.names:
            members.add_metric([location], sum(1 for m in health["members"] if m["location"] == location))
        yield from (leader, members)

    def _reload(self):
        """The names Prometheus uses for its own config reloads."""
        watcher = self.probe.watcher
        if watcher is None:
            return
        yield GaugeMetricFamily("probe_config_last_reload_successful",
                                "1 if the last config reload (or the start) succeeded, 0 if it was rejected",
                                value=1 if watcher.last_reload_ok else 0)
        yield GaugeMetricFamily("probe_config_last_reload_success_timestamp_seconds",
                                "When the config was last loaded successfully", value=watcher.loaded_ms / 1000)

    def _deliveries(self) -> GaugeMetricFamily:
        """Outbox rows by target and state: a growing `failed` is a row set aside (admin API: why)."""
        family = GaugeMetricFamily("probe_notification_deliveries", "Notification outbox rows by target and state",
                                   labels=["notifier", "state"])
        for (notifier, state), count in sorted(self.deliveries.items()):
            family.add_metric([notifier, state], count)
        return family
