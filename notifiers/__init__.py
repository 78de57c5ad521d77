"""Notification channels, registered by their TOML `type` (none yet)."""

REGISTRY: dict[str, type] = {}
