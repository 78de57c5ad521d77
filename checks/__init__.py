"""Check types, registered by their TOML `type`. Adding one: a module here and a line below."""
from __future__ import annotations

from checks.base import Check, CheckContext, Progress
from checks.dns import DnsCheck
from checks.http import HttpCheck
from checks.icmp import IcmpCheck
from checks.tcp import TcpCheck

REGISTRY: dict[str, type[Check]] = {c.type: c for c in (HttpCheck, TcpCheck, DnsCheck, IcmpCheck)}

__all__ = ["REGISTRY", "Check", "CheckContext", "Progress"]
