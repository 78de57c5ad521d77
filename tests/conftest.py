"""Fixtures shared across the suite: config files and real SQLite stores in tmp_path."""
from __future__ import annotations

import os
import ssl
import textwrap
from pathlib import Path

import pytest
import trustme

import probe.checks.tcp
from probe.config.loader import load_config
from probe.config.storage import parse_storage_url
from probe.core.calendar import Calendar
from probe.storage import open_storage
from probe.storage.sqlite import SqliteStore
from tests.peers.postgres import PostgresServer
from tests.peers.postgres import binaries as postgres_binaries


@pytest.fixture
def write_config(tmp_path, request):
    """Write TOML text to tmp_path/cfg.toml (dedented) and return the path. In a test that runs
    once per storage engine (it uses the `engine` fixture), the PostgreSQL run's configs keep
    their data in one fresh database instead of the file "probe.db"."""
    database = []

    def write(text: str, name: str = "cfg.toml") -> Path:
        text = textwrap.dedent(text)
        per_engine = "engine" in request.fixturenames
        on_postgres = request.getfixturevalue("engine") == "postgresql" if per_engine else ALL_ON_POSTGRES
        if on_postgres:
            database[:] = database or [request.getfixturevalue("postgres").create_database()]
            if 'path = "probe.db"' in text:
                text = text.replace('path = "probe.db"', f'url = "{database[0]}"')
            elif "[storage]" not in text:
                text += f'\n[storage]\nurl = "{database[0]}"\n'
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def load_monitor(tmp_path):
    """Load a config holding one monitor of `type` whose keys are `body` (TOML lines)."""

    def load(type: str, body: str):
        path = tmp_path / "cfg.toml"
        path.write_text(f'[[monitors]]\nid = "m"\ntype = "{type}"\n' + body)
        return load_config(path)

    return load


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the whole session (tests/peers/postgres.py)."""
    bin_dir = postgres_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        pytest.skip("asyncpg is not installed (pip install -e '.[test]')")
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


ENGINES = ["sqlite", "postgresql"]
# PROBE_TEST_ENGINE=postgresql runs every test that writes a config with path = "probe.db" on
# PostgreSQL instead (by hand: the suite runs the storage-semantics tests on both engines anyway).
ALL_ON_POSTGRES = os.environ.get("PROBE_TEST_ENGINE") == "postgresql"


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """Run the test once per storage engine."""
    return request.param


@pytest.fixture
def storage_toml(engine, request) -> str:
    """The [storage] section for the test's engine: a file in the config's folder, or a fresh database."""
    if engine == "postgresql":
        return f'[storage]\nurl = "{request.getfixturevalue("postgres").create_database()}"\n'
    return '[storage]\npath = "probe.db"\n'


@pytest.fixture
async def store(engine, tmp_path, request):
    if engine == "postgresql":
        url = request.getfixturevalue("postgres").create_database()
        s = open_storage(parse_storage_url(url, tmp_path), Calendar("UTC"), flush_interval=0.01)
    else:
        s = SqliteStore(tmp_path / "probe.db", Calendar("UTC"), flush_interval=0.01)
    await s.open()
    yield s
    await s.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusting(monkeypatch, ca):
    """The tcp check's client contexts trust the test CA (and only it) instead of the system store."""
    def client_context(verify: bool) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(ctx)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    monkeypatch.setattr(probe.checks.tcp, "client_context", client_context)
