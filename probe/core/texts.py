"""The words probe writes for an incident when the operator wrote none: its title and the
body of each status, per language. The page, the APIs, the feeds and every notification use them."""
from __future__ import annotations

from probe.core.models import Impact, Incident

# What Statuspage pages say when the operator writes nothing (see REFERENCE.md).
DEFAULT_BODIES = {
    "en": {
        "investigating": "We are currently investigating this issue.",
        "identified": "The issue has been identified and a fix is being implemented.",
        "monitoring": "A fix has been implemented and we are monitoring the results.",
        "resolved": "This incident has been resolved.",
    },
    "zh-CN": {
        "investigating": "我们正在调查此问题。",
        "identified": "问题已经确认，正在实施修复。",
        "monitoring": "修复已经实施，我们正在观察结果。",
        "resolved": "此事件已解决。",
    },
}


def default_body(status: str, language: str = "en") -> str:
    texts = DEFAULT_BODIES.get(language, DEFAULT_BODIES["en"])
    return texts.get(status, texts["investigating"])


# The timeline's word for an automatic reopen: when is the entry's time; this says why.
REOPEN_BODIES = {
    "en": "Reopened automatically: the monitor failed again within its reopen window after its checks had "
          "resolved this incident, so the incident continues rather than a new one opening.",
    "zh-CN": "已自动重新打开：检查恢复使此事件解决后，监控在重新打开时限内再次失败，因此继续此事件，而不是新建一个。",
}


def update_body(status: str, kind: str, language: str = "en") -> str:
    """The text of a timeline entry the operator wrote nothing for."""
    if kind == "reopen":
        return REOPEN_BODIES.get(language, REOPEN_BODIES["en"])
    return default_body(status, language)


DEFAULT_TITLES = {
    "en": {"major": "{name} is down", "minor": "{name} is degraded"},
    "zh-CN": {"major": "{name} 服务中断", "minor": "{name} 性能下降"},
}


def display_title(incident: Incident, monitor_name: str, language: str = "en") -> str:
    """An operator's title, else the generated one ("Website is down") for automatic incidents."""
    if incident.title:
        return incident.title
    texts = DEFAULT_TITLES.get(language, DEFAULT_TITLES["en"])
    key = "minor" if incident.impact is Impact.MINOR else "major"
    return texts[key].format(name=monitor_name)
