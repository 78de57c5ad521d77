"""Check types, registered by their TOML `type`. Adding one: a module here and a line below."""
from __future__ import annotations

from probe.checks.base import Check, CheckContext, Progress
from probe.checks.dns import DnsCheck
from probe.checks.http import HttpCheck
from probe.checks.icmp import IcmpCheck
from probe.checks.push import PushCheck
from probe.checks.tcp import TcpCheck

REGISTRY: dict[str, type[Check]] = {c.type: c for c in (HttpCheck, TcpCheck, DnsCheck, IcmpCheck, PushCheck)}

__all__ = ["REGISTRY", "Check", "CheckContext", "Progress"]
