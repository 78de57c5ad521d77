"""`probe storage copy -c FILE --to URL` and `probe storage check -c FILE`."""
from __future__ import annotations

import asyncio
import sys

from probe.config.loader import load_config
from probe.config.storage import parse_storage_url
from probe.core.calendar import Calendar
from probe.storage import StoreError, open_storage
from probe.storage.copy import CopyError, copy_all

EXIT_FAILED, EXIT_USAGE = 1, 2


def add_commands(sub, default_config: str, config_help: str) -> None:
    storage = sub.add_parser("storage", help="copy the history to another database; check a database")
    steps = storage.add_subparsers(dest="action", required=True)
    copy = steps.add_parser("copy", help="copy the whole history from the config's storage into an empty database")
    copy.add_argument("-c", "--config", default=default_config, help=config_help)
    copy.add_argument("--to", required=True, metavar="URL",
                      help='the target: "postgresql://user@host/db" or "sqlite:///path/to/new.db"')
    copy.set_defaults(func=cmd_copy)
    check = steps.add_parser("check", help="integrity, schema version and size of the config's storage")
    check.add_argument("-c", "--config", default=default_config, help=config_help)
    check.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    config = load_config(args.config)
    store = open_storage(config.storage_target, Calendar(config.page.tz))
    try:
        lines = asyncio.run(store.check())
    except StoreError as exc:
        print(f"probe: cannot check {store.describe()}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    width = max(len(what) for what, _ in lines)
    for what, finding in lines:
        print(f"{what:<{width}}  {finding}")
    healthy = all(finding == "ok" for what, finding in lines if what == "integrity")
    return 0 if healthy else EXIT_FAILED


def cmd_copy(args) -> int:
    config = load_config(args.config)
    try:
        target = parse_storage_url(args.to, config.path.parent)
    except ValueError as exc:
        print(f"probe: --to {exc}", file=sys.stderr)
        return EXIT_USAGE
    if target.display == config.storage_target.display:
        print(f"probe: --to names the config's own storage ({target.display})", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_copy(config, target))


async def _copy(config, target) -> int:
    calendar = Calendar(config.page.tz)
    source, sink = open_storage(config.storage_target, calendar), open_storage(target, calendar)
    opened = []
    try:
        for store in (source, sink):
            await store.open()
            opened.append(store)
        counts = await copy_all(source, sink, _progress())
    except (StoreError, CopyError) as exc:
        print(f"\nprobe: storage copy failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for store in opened:
            await store.close()
    print(f"copied {sum(counts.values()):,} rows from {source.describe()} to {sink.describe()}; row counts verified:")
    for table, n in counts.items():
        print(f"  {table:<17}{n:>14,}")
    print("Now set [storage] in the config to the new database and restart probe.")
    return 0


def _progress():
    """One line per table, drawn again in place on a terminal: "results  [#####.....]  51% 1,234/2,418"."""
    tty = sys.stderr.isatty()

    def show(table: str, done: int, total: int) -> None:
        share = done / total if total else 1.0
        bar = "#" * int(share * 20)
        line = f"{table:<17}[{bar:<20}] {share:4.0%} {done:,}/{total:,}"
        if tty:
            print(f"\r{line}", end="\n" if done >= total else "", file=sys.stderr, flush=True)
        elif done >= total:
            print(line, file=sys.stderr)
    return show
