"""The `probe` command: `main` is the console script's entry point (probe.cli:main)."""
from probe.cli.main import main

__all__ = ["main"]
