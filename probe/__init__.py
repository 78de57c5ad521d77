"""probe: a self-hosted uptime monitor with a built-in public status page."""

__version__ = "0.1.0"
