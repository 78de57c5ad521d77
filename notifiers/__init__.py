"""Notification channels, registered by their TOML `type`.

`parse_notifiers` reads the [[notifiers]] array of the config (issue 4 fills it in).
"""
from __future__ import annotations

from typing import Any

REGISTRY: dict[str, type] = {}


def parse_notifiers(items: Any, problems) -> tuple[Any, ...]:
    """[[notifiers]] -> configs, one problem line per mistake. No channel types exist yet."""
    if not isinstance(items, list):
        problems.add("", "notifiers", "must be an array of tables ([[notifiers]])")
        return ()
    for index, _ in enumerate(items):
        problems.add(f"notifiers[{index}]", None, "notifiers are not supported yet")
    return ()
