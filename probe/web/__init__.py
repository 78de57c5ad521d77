"""The web side of probe: status page, APIs and health, served by `probe run`."""
