"""Fixtures shared across the suite: config files and real SQLite stores in tmp_path."""
from __future__ import annotations

import ssl
import textwrap
from pathlib import Path

import pytest
import trustme

import probe.checks.tcp
from probe.config.loader import load_config
from probe.core.calendar import Calendar
from probe.storage.sqlite import SqliteStore


@pytest.fixture
def write_config(tmp_path):
    """Write TOML text to tmp_path/cfg.toml (dedented) and return the path."""

    def write(text: str, name: str = "cfg.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
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


@pytest.fixture
async def store(tmp_path):
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
