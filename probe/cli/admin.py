"""`probe incident ...`: the operator's commands, sent to the running probe's admin API.

The CLI never writes the database itself: the running process stays the one writer.
Server URL and token come from flags, else $PROBE_ADMIN_TOKEN / the config file.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from argparse import SUPPRESS
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp

from probe.config.loader import load_config
from probe.core.models import COMPONENT_STATUSES
from probe.engine.operator import IMPACTS, STATUSES

EXIT_FAILED, EXIT_USAGE = 1, 2


def _server_options(parser, default_config, config_help: str) -> None:
    """-c, --url and --token, on `probe incident` and again on each action, so they may come before
    or after it (`probe incident list -c FILE`). On an action they default to nothing (SUPPRESS), so
    they do not undo what was given before it."""
    parser.add_argument("-c", "--config", default=default_config, help=config_help)
    parser.add_argument("--url", default=None if default_config is not SUPPRESS else SUPPRESS,
                        help="the probe's base URL (default: from [server] listen)")
    parser.add_argument("--token", default=None if default_config is not SUPPRESS else SUPPRESS,
                        help="admin token (default: $PROBE_ADMIN_TOKEN, else [server] admin_token)")


def _actions(parser, config_help: str):
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser

    def add_parser(*args, **kwargs):
        action = add(*args, **kwargs)
        _server_options(action, SUPPRESS, config_help)
        return action
    actions.add_parser = add_parser
    return actions


def add_commands(sub, default_config: str, config_help: str) -> None:
    incident = sub.add_parser("incident", help="open, update, resolve incidents and publish postmortems")
    _server_options(incident, default_config, config_help)
    actions = _actions(incident, config_help)

    actions.add_parser("list", help="recent incidents").add_argument("--open", action="store_true")
    opened = actions.add_parser("open", help="open an incident by hand")
    opened.add_argument("--title", required=True)
    opened.add_argument("--impact", choices=IMPACTS, default="major")
    opened.add_argument("--monitor", action="append", default=[], dest="monitors", help="affected monitor id")
    opened.add_argument("--status", choices=STATUSES[:-1], default="investigating")
    opened.add_argument("--body", help="first update (default: the standard text for the status)")
    update = actions.add_parser("update", help="post an update")
    update.add_argument("id", type=int)
    update.add_argument("--status", choices=STATUSES, required=True)
    update.add_argument("--body")
    for parser in (opened, update):
        _component_status_option(parser)
    resolve = actions.add_parser("resolve", help="resolve an incident")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--body")
    edit = actions.add_parser("edit", help="give an incident a title or a new impact")
    edit.add_argument("id", type=int)
    edit.add_argument("--title")
    edit.add_argument("--impact", choices=IMPACTS)
    _component_status_option(edit)
    postmortem = actions.add_parser("postmortem", help="publish a postmortem (markdown)")
    postmortem.add_argument("id", type=int)
    postmortem.add_argument("--file", type=Path, required=True, help="markdown file; - for stdin")
    incident.set_defaults(func=cmd_incident)

    maintenance = sub.add_parser("maintenance", help="list, schedule and cancel maintenance windows")
    _server_options(maintenance, default_config, config_help)
    steps = _actions(maintenance, config_help)
    listing = steps.add_parser("list", help="each window's current or next occurrence")
    listing.add_argument("--all", action="store_true", help="every occurrence of the last week and the next 90 days")
    listing.add_argument("--until", help="every occurrence from a week ago until this ISO 8601 time (with offset)")
    add = steps.add_parser("add", help="schedule a window")
    add.add_argument("--title", required=True)
    add.add_argument("--monitor", action="append", required=True, dest="monitors", help="covered monitor id")
    add.add_argument("--start", help="ISO 8601 with offset, e.g. 2026-12-01T02:00:00+01:00 (default: now)")
    length = add.add_mutually_exclusive_group(required=True)
    length.add_argument("--duration", help='e.g. "2h"')
    length.add_argument("--end", help="ISO 8601 with offset")
    add.add_argument("--description")
    cancel = steps.add_parser("cancel", help="cancel a window (one in progress ends now)")
    cancel.add_argument("id")
    maintenance.set_defaults(func=cmd_maintenance)


def _component_status_option(parser) -> None:
    parser.add_argument("--component-status", action="append", default=[], type=_status_pair,
                        metavar="MONITOR=STATUS", dest="component_status",
                        help=f"set a monitor's status on the page until resolved ({', '.join(COMPONENT_STATUSES)})")


def _status_pair(text: str) -> tuple[str, str]:
    monitor, sep, status = text.partition("=")
    if not sep or not monitor or status not in COMPONENT_STATUSES:
        raise argparse.ArgumentTypeError(
            f"expected MONITOR=STATUS with STATUS one of {', '.join(COMPONENT_STATUSES)} (got {text!r})")
    return monitor, status


def cmd_maintenance(args) -> int:
    base = "/api/v1/admin/maintenance"
    if args.action == "list":
        query = {k: v for k, v in (("all", "true" if args.all else None), ("until", args.until)) if v}
        request = ("GET", base + ("?" + urlencode(query) if query else ""), None)
    elif args.action == "add":
        request = ("POST", base, _without_none(title=args.title, monitors=args.monitors, start=args.start,
                                               duration=args.duration, end=args.end, description=args.description))
    else:
        request = ("DELETE", f"{base}/{args.id}", None)
    answer, code = _send(args, *request)
    if answer is None:
        return code
    zone = answer.get("time_zone")
    for window in answer.get("maintenance", [answer]):
        if "cancelled" in window:
            print(f"cancelled {window['cancelled']}" + (" (ended now)" if window["ended_early"] else ""))
        else:
            rule = f"  ({window['rule']})" if window.get("rule") else ""
            print(f"{window['id']:<28} {window['status']:<11} {local(window['starts_at'], zone)} -> "
                  f"{local(window['ends_at'], zone)}  {','.join(window['monitors'])}  {window['title']}{rule}"
                  f"  [{window['source']}]")
    return 0


def local(iso: str | None, zone: str | None) -> str:
    """An API time in the page's time zone, as the page shows it: "2026-12-01 02:00 CET"."""
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso)
    return (moment.astimezone(ZoneInfo(zone)) if zone else moment).strftime("%Y-%m-%d %H:%M %Z")


def _send(args, method: str, path: str, body: dict | None) -> tuple[dict | None, int]:
    """(the answer, 0), or (None, exit code) after saying on stderr why it failed."""
    url, token = _server(args)
    if not token:
        print("probe: no admin token: set [server] admin_token, $PROBE_ADMIN_TOKEN or --token", file=sys.stderr)
        return None, EXIT_USAGE
    try:
        status, answer = asyncio.run(_call(url, token, method, path, body))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        print(f"probe: cannot reach {url}: {exc or exc.__class__.__name__}", file=sys.stderr)
        return None, EXIT_FAILED
    if status >= 400:
        print(f"probe: {answer.get('error', 'request failed')} (HTTP {status})", file=sys.stderr)
        return None, EXIT_FAILED
    return answer, 0


def cmd_incident(args) -> int:
    answer, code = _send(args, *_request_for(args))
    if answer is None:
        return code
    for incident in answer.get("incidents", [answer]):
        print(describe(incident, answer.get("time_zone") or incident.get("time_zone")))
    return 0


def _request_for(args) -> tuple[str, str, dict | None]:
    base = "/api/v1/admin/incidents"
    if args.action == "list":
        return "GET", base + ("?open=true" if args.open else ""), None
    statuses = dict(getattr(args, "component_status", [])) or None
    if args.action == "open":
        return "POST", base, _without_none(title=args.title, impact=args.impact, monitors=args.monitors,
                                           status=args.status, body=args.body, component_status=statuses)
    if args.action in ("update", "resolve"):
        status = "resolved" if args.action == "resolve" else args.status
        return "POST", f"{base}/{args.id}/updates", _without_none(status=status, body=args.body,
                                                                  component_status=statuses)
    if args.action == "edit":
        return "PATCH", f"{base}/{args.id}", _without_none(title=args.title, impact=args.impact,
                                                           component_status=statuses)
    text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    return "PUT", f"{base}/{args.id}/postmortem", {"body": text}


def _server(args) -> tuple[str, str]:
    token = args.token or os.environ.get("PROBE_ADMIN_TOKEN", "")
    url = args.url
    if not url or not token:
        config = load_config(args.config)
        token = token or config.server.admin_token
        host = config.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
        url = url or f"http://{host}:{config.server.port}"
    return url.rstrip("/"), token


async def _call(url: str, token: str, method: str, path: str, body: dict | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}", "X-Probe-Author": os.environ.get("USER", "operator")}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.request(method, url + path, json=body, headers=headers) as resp:
            text = await resp.text()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, {"error": text.strip()[:200] or "no answer"}


def describe(incident: dict, zone: str | None = None) -> str:
    monitors = ",".join(incident.get("monitors", [])) or "-"
    title = incident.get("display_title") or incident.get("title")
    line = (f"#{incident['id']}  {incident['status']:<13} {incident['impact']:<8} {monitors:<16} "
            f"{local(incident['started_at'], zone)}  {title}")
    if incident.get("postmortem_at"):
        line += "  [postmortem]"
    return line


def _without_none(**fields) -> dict:
    return {k: v for k, v in fields.items() if v is not None}
