"""Maintenance windows: [[maintenance]] in the config (issue 5 fills this in)."""
from __future__ import annotations

from typing import Any


def parse_maintenance(items: Any, monitor_ids: set[str], problems) -> tuple[Any, ...]:
    """[[maintenance]] -> windows, one problem line per mistake. Not supported yet."""
    if not isinstance(items, list):
        problems.add("", "maintenance", "must be an array of tables ([[maintenance]])")
        return ()
    for index, _ in enumerate(items):
        problems.add(f"maintenance[{index}]", None, "maintenance windows are not supported yet")
    return ()
