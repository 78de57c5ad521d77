"""Fixtures shared across the suite: config files and real SQLite stores in tmp_path."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from probe.calendar import Calendar
from probe.config import load_config
from probe.store import Store


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
    s = Store(tmp_path / "probe.db", Calendar("UTC"), flush_interval=0.01)
    await s.open()
    yield s
    await s.close()
