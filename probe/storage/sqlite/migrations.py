"""The SQLite schema, one script per version (PRAGMA user_version counts them). A migration is
appended, never edited: a database at version n runs scripts n+1.. in order, each in one
transaction. PostgreSQL's migrations share these version numbers."""
from __future__ import annotations

import logging

log = logging.getLogger("probe.store")

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE monitors (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        grp TEXT NOT NULL DEFAULT '',
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE reasons (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
    -- One row per check. Clustered on (monitor, ts): every read is a range of one monitor.
    CREATE TABLE results (
        monitor INTEGER NOT NULL,
        ts INTEGER NOT NULL,            -- actual start, ms UTC
        late INTEGER NOT NULL,          -- ms after the scheduled start
        status INTEGER NOT NULL,        -- 0 up, 1 degraded, 2 down
        latency_us INTEGER,
        flags INTEGER NOT NULL DEFAULT 0,
        reason INTEGER REFERENCES reasons(id),
        details TEXT,                   -- JSON, kept for results that are not up
        PRIMARY KEY (monitor, ts)
    ) WITHOUT ROWID;
    CREATE TABLE rollups (
        monitor INTEGER NOT NULL,
        res INTEGER NOT NULL,           -- 0 hourly (UTC), 1 daily (page time zone)
        start INTEGER NOT NULL,         -- bucket start, ms UTC
        n_up INTEGER NOT NULL DEFAULT 0,
        n_degraded INTEGER NOT NULL DEFAULT 0,
        n_down INTEGER NOT NULL DEFAULT 0,
        up_ms INTEGER NOT NULL DEFAULT 0,
        degraded_ms INTEGER NOT NULL DEFAULT 0,
        down_ms INTEGER NOT NULL DEFAULT 0,
        maint_ms INTEGER NOT NULL DEFAULT 0,
        maint_good_ms INTEGER NOT NULL DEFAULT 0,
        lat_n INTEGER NOT NULL DEFAULT 0,
        lat_sum REAL NOT NULL DEFAULT 0,
        lat_min REAL,
        lat_max REAL,
        lat_hist TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (monitor, res, start)
    ) WITHOUT ROWID;
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        monitor INTEGER REFERENCES monitors(id),  -- NULL for incidents opened by hand
        origin TEXT NOT NULL DEFAULT 'auto',
        title TEXT NOT NULL DEFAULT '',           -- '' for automatic: rendered per language
        impact TEXT NOT NULL,
        status TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        resolved_ms INTEGER,
        reason TEXT NOT NULL DEFAULT '',
        updated_ms INTEGER NOT NULL
    );
    -- The engine's invariant, enforced by the file itself: one open automatic incident per monitor.
    CREATE UNIQUE INDEX incidents_one_open ON incidents(monitor) WHERE resolved_ms IS NULL AND origin = 'auto';
    CREATE INDEX incidents_by_monitor ON incidents(monitor, started_ms);
    CREATE INDEX incidents_by_start ON incidents(started_ms);
    CREATE TABLE incident_updates (
        id INTEGER PRIMARY KEY,
        incident INTEGER NOT NULL REFERENCES incidents(id),
        status TEXT NOT NULL,
        body TEXT,                      -- NULL: the default text for the status, in the page's language
        kind TEXT NOT NULL,             -- open | escalate | reopen | resolve | update
        author TEXT NOT NULL DEFAULT 'probe',
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX incident_updates_by_incident ON incident_updates(incident, created_ms);
    -- Every incident transition, in order: notifiers read from here.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        incident INTEGER NOT NULL REFERENCES incidents(id),
        monitor INTEGER,
        reason TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: the operator's workflow: manual incidents name monitors; postmortems
    """
    ALTER TABLE incidents ADD COLUMN affected TEXT NOT NULL DEFAULT '';  -- monitor ids, space-separated
    ALTER TABLE incidents ADD COLUMN postmortem TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN postmortem_ms INTEGER;
    """,
    # 3: the notification outbox: written before a message is sent, so none is lost or sent twice
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        notifier TEXT NOT NULL,
        key TEXT NOT NULL,              -- event:<id> | remind:<incident>:<n> | test:<ms>
        payload TEXT NOT NULL,          -- the message as JSON, as it was when queued
        state TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        done_ms INTEGER,
        answer TEXT NOT NULL DEFAULT '',  -- what the channel said last (its own error text on failure)
        UNIQUE (notifier, key)
    );
    CREATE INDEX deliveries_pending ON deliveries(notifier, id) WHERE state = 'pending';
    """,
    # 4: maintenance windows an operator schedules through the admin API (the config's live in the file)
    """
    CREATE TABLE maintenance (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        monitors TEXT NOT NULL,         -- monitor ids, space-separated
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,        -- moved to the cancel time when cancelled while in progress
        created_ms INTEGER NOT NULL,
        cancelled_ms INTEGER,
        author TEXT NOT NULL DEFAULT 'operator'
    );
    """,
    # 5: which expiry notices were queued, per certificate (a renewed one has a new notAfter)
    """
    CREATE TABLE cert_notices (
        monitor TEXT NOT NULL,          -- the monitor's id in the config
        expires_ts INTEGER NOT NULL,    -- the certificate's notAfter, seconds UTC
        threshold INTEGER NOT NULL,     -- the cert_expiry_notify day it crossed
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (monitor, expires_ts, threshold)
    ) WITHOUT ROWID;
    """,
    # 6: email subscribers of the status page (double opt-in; an unsubscribe deletes the row)
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,     -- lowercased
        groups TEXT NOT NULL DEFAULT '[]',  -- JSON list of monitor groups; [] is every group
        created_ms INTEGER NOT NULL,
        requested_ms INTEGER NOT NULL,  -- the last subscribe request: the confirmation link expires from it
        confirmed_ms INTEGER            -- NULL until the link in the confirmation mail is followed
    );
    """,
    # 7: the component statuses an operator's incident sets (as Statuspage's incident form does)
    """
    ALTER TABLE incidents ADD COLUMN components TEXT NOT NULL DEFAULT '';  -- "api=partial_outage db=...", space-separated
    """,
    # 8: the config's maintenance windows as probe has known them, so that no occurrence is listed from
    # before a window was in the config (a cron line says nothing about the past), and the past
    # occurrences of a definition that changed or left the config are kept as they were
    """
    CREATE TABLE maintenance_config (
        id TEXT PRIMARY KEY,            -- the [[maintenance]] id
        definition TEXT NOT NULL,       -- JSON: what its occurrences follow (cron or start, duration, ...)
        since_ms INTEGER NOT NULL       -- first loaded with this schedule: occurrences ended before are not listed
    );
    CREATE TABLE maintenance_past (
        id TEXT PRIMARY KEY,            -- the occurrence's id, e.g. weekly@2026-11-29T02:00
        series TEXT NOT NULL,           -- the [[maintenance]] id it came from
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        monitors TEXT NOT NULL,         -- monitor ids, space-separated
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL
    );
    """,
    # 9: PostgreSQL's tables for several instances on one database ([cluster], which needs PostgreSQL):
    # here they stay empty, so that both engines have the same tables and `storage copy` moves them
    """
    CREATE TABLE cluster_instances (
        instance TEXT PRIMARY KEY,
        location TEXT NOT NULL,
        version TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        token TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        seen_ms INTEGER NOT NULL
    );
    CREATE TABLE cluster_leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        term INTEGER NOT NULL,
        instance TEXT NOT NULL,
        since_ms INTEGER NOT NULL
    );
    INSERT INTO cluster_leader VALUES (1, 0, '', 0);
    -- Each location's own results of a monitor; `results` holds what they confirm together.
    CREATE TABLE location_results (
        monitor INTEGER NOT NULL,
        location TEXT NOT NULL,
        ts INTEGER NOT NULL,
        late INTEGER NOT NULL,
        status INTEGER NOT NULL,
        latency_us INTEGER,
        flags INTEGER NOT NULL DEFAULT 0,
        reason INTEGER REFERENCES reasons(id),
        details TEXT,
        PRIMARY KEY (monitor, location, ts)
    ) WITHOUT ROWID;
    """,
]


async def migrate(conn, path, error) -> None:
    """Bring the database at `conn` to the newest version; `error` is raised when it is newer than us."""
    async with conn.execute("PRAGMA user_version") as cur:
        version = (await cur.fetchone())[0]
    if version > len(MIGRATIONS):
        raise error(f"{path}: database schema {version} is newer than this probe "
                    f"understands ({len(MIGRATIONS)}); upgrade probe")
    if version < len(MIGRATIONS):
        # One line whatever the number of scripts: a new file is not six events for the operator.
        log.info("%s database path=%s from_version=%d to_version=%d", "creating" if version == 0 else "migrating",
                 path, version, len(MIGRATIONS))
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
