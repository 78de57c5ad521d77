"""Live config reload: on SIGHUP and when the file changes on disk.

Validate first. A config with mistakes changes nothing: the process keeps running on the
old one and says why (log lines, /healthz `config.error`, GET /api/v1/admin/config). A
good one is applied without a restart: monitors added, removed or changed take effect,
and unchanged ids keep their history and open incidents. `[server]` (the listening
address, tokens), `[cluster]` (the instance's name and location) and `[storage] path` are read at start only: a change there is logged
and waits for a restart, since swapping the database or the socket under a running
process would lose results.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from probe.config.loader import Config, ConfigError, load_config
from probe.core.units import iso_utc, now_ms

log = logging.getLogger("probe.reload")


class ConfigWatcher:
    def __init__(self, probe, path: str | Path, poll_s: float = 2.0,
                 after_apply: Callable[[], None] | None = None) -> None:
        self.probe = probe
        self.after_apply = after_apply  # `probe run` settles memory after each reload (probe/memory.py)
        self.path = Path(path)
        self.poll_s = poll_s
        self.loaded_ms = now_ms()  # the last successful load (the start counts)
        self.error: list[str] | None = None  # the problems of the last attempt, if it failed
        self.pending_restart: list[str] = []
        self.running_server = probe.config.server  # what the socket and tokens were set up from, at start
        self.running_cluster = probe.config.cluster  # the instance's name and place in the cluster, from start
        self._digest = self._read_digest()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="config-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def status(self) -> dict:
        return {"path": str(self.path), "loaded_ms": self.loaded_ms, "error": self.error,
                "needs_restart": self.pending_restart}

    @property
    def last_reload_ok(self) -> bool:
        return self.error is None

    def problem(self, detail: bool = True) -> str | None:
        """For /healthz: a rejected reload is a problem the operator must hear of, though the
        process runs on (as Prometheus's own /-/healthy stays up after a failed reload). Without
        `detail` (the public /healthz), the config's own words stay out: they are the admin API's."""
        if self.error is None:
            return None
        line = f"config reload rejected, still running the config loaded at {iso_utc(self.loaded_ms)}"
        return f"{line}: {self.error[0]}" if detail else line

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            digest = self._read_digest()
            if digest is not None and digest != self._digest:
                self._digest = digest
                await self.reload("file changed")

    async def reload(self, why: str) -> bool:
        async with self._lock:
            try:
                config = load_config(self.path)
            except ConfigError as exc:
                self.error = exc.problems
                for line in exc.problems:
                    log.error("config reload (%s) rejected, still running the previous config: %s", why, line)
                return False
            self.error = self._fixed_at_start(config)
            if self.error:
                log.error("config reload (%s) rejected: %s", why, self.error[0])
                return False
            self.pending_restart = self._restart_only_changes(config)
            for change in self.pending_restart:
                log.warning("config reload: %s changed; it takes effect at the next restart", change)
            await self.probe.apply(config)
            if self.after_apply is not None:
                self.after_apply()
            self.loaded_ms = now_ms()
            log.info("config reloaded (%s) monitors=%d notifiers=%d", why, len(config.monitors),
                     len(config.notifiers))
            return True

    def _fixed_at_start(self, config: Config) -> list[str] | None:
        if config.database_path != self.probe.config.database_path:
            return [f"{self.path.name}: storage: path cannot change while probe runs "
                    f"({self.probe.config.database_path} -> {config.database_path}); restart to switch databases"]
        return None

    def _restart_only_changes(self, config: Config) -> list[str]:
        """Compared with what runs (set up at start), not with the last file: a change reverted
        before a restart needs none."""
        return (["[server]"] if config.server != self.running_server else []) \
            + (["[cluster]"] if config.cluster != self.running_cluster else [])
