"""`probe run | check | validate | incident`. Operator mistakes end in one clear line, never a traceback."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

from probe import __version__
from probe.cli import admin as admin_cli
from probe.cli import storage as storage_cli
from probe.config.loader import Config, ConfigError, load_config
from probe.core.models import Status
from probe.core.units import format_latency

EXIT_DOWN, EXIT_USAGE = 1, 2
REQUESTS_GRACE_S, GRACE_S = 3.0, 5.0  # for requests in flight at a stop; for the rest of a stop


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return args.func(args)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe", description="Uptime monitor with a public status page.")
    parser.add_argument("--version", action="version", version=f"probe {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("PROBE_LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = "the TOML config file (default: $PROBE_CONFIG or config.toml)"
    default_config = os.environ.get("PROBE_CONFIG", "config.toml")

    run = sub.add_parser("run", help="run the scheduler, the store and the web server")
    run.add_argument("-c", "--config", default=default_config, help=config_help)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="run checks once and print the results")
    check.add_argument("-c", "--config", default=default_config, help=config_help)
    check.add_argument("ids", nargs="*", metavar="ID", help="monitor ids (default: all)")
    check.set_defaults(func=cmd_check)

    validate = sub.add_parser("validate", help="check the config file and print every problem")
    validate.add_argument("-c", "--config", default=default_config, help=config_help)
    validate.set_defaults(func=cmd_validate)

    notify_test = sub.add_parser("notify-test", help="send a test message through one notifier and print the answer")
    notify_test.add_argument("-c", "--config", default=default_config, help=config_help)
    notify_test.add_argument("notifier", metavar="NOTIFIER_ID")
    notify_test.set_defaults(func=cmd_notify_test)

    admin_cli.add_commands(sub, default_config, config_help)
    storage_cli.add_commands(sub, default_config, config_help)
    return parser


def _setup_logging(level: str) -> None:
    logging.Formatter.converter = time.gmtime
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)sZ %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")


# ---- validate -------------------------------------------------------------------------

def cmd_validate(args) -> int:
    config = load_config(args.config)
    print(f"{args.config}: ok ({len(config.monitors)} monitors)")
    return 0


# ---- notify-test ----------------------------------------------------------------------

def cmd_notify_test(args) -> int:
    """Straight to the channel, not through the outbox: the operator wants the answer now."""
    config = load_config(args.config)
    chosen = next((n for n in config.notifiers if n.id == args.notifier), None)
    if chosen is None:
        known = ", ".join(n.id for n in config.notifiers) or "none"
        print(f'{config.path.name}: no notifier with id "{args.notifier}" (known: {known})', file=sys.stderr)
        return EXIT_USAGE
    ok, answer = asyncio.run(_send_test(config, chosen))
    print(f"{chosen.id} ({chosen.type}): {'sent' if ok else 'FAILED'}: {answer}")
    return 0 if ok else EXIT_DOWN


async def _send_test(config: Config, chosen) -> tuple[bool, str]:
    import aiohttp

    from probe.notifiers import NotifyError
    from probe.notify.messages import Messages

    message = Messages(lambda: config).test(chosen)
    async with aiohttp.ClientSession() as session:
        try:
            return True, await chosen.make().send(message, session)
        except NotifyError as exc:
            return False, exc.message + (" (permanent: fix the config)" if exc.permanent else " (transient)")


# ---- check ----------------------------------------------------------------------------

def cmd_check(args) -> int:
    config = load_config(args.config)
    monitors = _select(config, args.ids)
    if monitors is None:
        return EXIT_USAGE
    results = asyncio.run(_check_all(config, monitors))
    print(_table(monitors, results))
    return EXIT_DOWN if any(r.status is Status.DOWN for r in results) else 0


def _select(config: Config, ids: list[str]):
    if not ids:
        return list(config.monitors)
    unknown = [i for i in ids if config.monitor(i) is None]
    for monitor_id in unknown:
        print(f"{config.path.name}: no monitor with id \"{monitor_id}\"", file=sys.stderr)
    return None if unknown else [config.monitor(i) for i in ids]


async def _check_all(config: Config, monitors):
    from probe.core.calendar import Calendar
    from probe.engine.passive import StoredHistory
    from probe.engine.runner import CheckRunner

    # Push monitors are not run: they report what `probe run` stored of them.
    runner = CheckRunner(history=StoredHistory(config.storage_target, Calendar(config.page.tz)))
    try:
        return await asyncio.gather(*(runner.run(m, m.make_check()) for m in monitors))
    finally:
        await runner.close()


def _table(monitors, results) -> str:
    rows = [("ID", "TYPE", "STATUS", "LATENCY", "REASON")]
    rows += [(m.id, m.type, r.status.label.upper(), format_latency(r.latency_ms), r.reason)
             for m, r in zip(monitors, results)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4] for row in rows)


# ---- run ------------------------------------------------------------------------------

def cmd_run(args) -> int:
    config = load_config(args.config)
    return asyncio.run(_serve(config, args.config))


async def _serve(config: Config, config_path: str) -> int:
    from aiohttp import web

    from probe.config.reload import ConfigWatcher
    from probe.core import memory
    from probe.service import FLUSH_TIMEOUT_S, Probe
    from probe.storage import StoreError
    from probe.web.app import create_app
    from probe.web.front import FrontProcess

    log = logging.getLogger("probe")
    probe = Probe(config)
    probe.watcher = ConfigWatcher(probe, config_path, after_apply=memory.settle)
    app = create_app(probe)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=REQUESTS_GRACE_S)
    try:
        await runner.setup()  # starts the probe: opens the database, schedules the checks
    except (StoreError, OSError) as exc:
        print(f"probe: cannot open the database {probe.store.describe()}: {exc}", file=sys.stderr)
        return EXIT_DOWN
    except probe.store.WRITE_ERRORS as exc:  # opened, but the first writes failed (a full or read-only disk)
        await probe.store.close()
        print(f"probe: cannot write the database {probe.store.describe()}: "
              f"{probe.store.write_state.describe(exc)} ({exc})", file=sys.stderr)
        return EXIT_DOWN
    # The application listens on a private socket; a front process takes the page traffic on
    # [server] listen, so that a crowd cannot bend what checks measure (web/front.py).
    try:
        socket_dir = tempfile.mkdtemp(prefix="probe-web-")  # 0700: only this user reaches the socket
        await web.UnixSite(runner, os.path.join(socket_dir, "app.sock")).start()
    except OSError as exc:
        print(f"probe: cannot make the web server's private socket in {tempfile.gettempdir()} ($TMPDIR): "
              f"{exc.strerror or exc}", file=sys.stderr)
        await runner.cleanup()
        return EXIT_DOWN
    front = FrontProcess(config.server.host, config.server.port, os.path.join(socket_dir, "app.sock"))
    problem = await front.start()
    if problem is not None:
        print(f"{config.path.name}: server: cannot listen on {config.server.listen}: {problem}", file=sys.stderr)
        await runner.cleanup()
        shutil.rmtree(socket_dir, ignore_errors=True)
        return EXIT_DOWN
    log.info("listening on http://%s", config.server.listen)
    following = asyncio.create_task(front.follow(probe.public_generation), name="web-front-follow")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(probe.watcher.reload("SIGHUP")))
    probe.watcher.start()
    memory.settle()
    await stop.wait()
    _exit_if_not_stopped_within(REQUESTS_GRACE_S + probe.notify.outbox.drain_limit_s() + FLUSH_TIMEOUT_S + GRACE_S)
    await probe.watcher.stop()
    following.cancel()
    await front.stop()  # no new requests; those in flight are answered
    log.info("stopping: flushing pending results")
    await runner.cleanup()
    shutil.rmtree(socket_dir, ignore_errors=True)
    return EXIT_DOWN if probe.store.lost_results else 0


def _exit_if_not_stopped_within(seconds: float) -> None:
    """Whatever the stop waits on (a thread inside a database call, a channel that never
    answers), the process ends: a supervisor's SIGTERM must mean it, and a stuck process
    would hold the database's lock and keep a new one from starting."""
    def exit_now() -> None:
        logging.getLogger("probe").error("did not stop within %.0fs; exiting now", seconds)
        logging.shutdown()
        os._exit(EXIT_DOWN)
    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True  # it must not itself keep the process alive
    timer.start()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
