"""What the probe benchmarks share: loopback targets, `probe run` as a subprocess, /proc readings.

Every figure is taken from outside the measured process: CPU time and RSS from
/proc/<pid>, lateness and counts from the database the product wrote.
"""
from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
{listens}
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@contextmanager
def workdir(prefix: str, keep: bool = False):
    folder = Path(tempfile.mkdtemp(prefix=f"probe-bench-{prefix}-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def nginx(folder: Path, ports: list[int]):
    """A local nginx answering 200 "ok" on each port (several ports spread ephemeral ports over more 4-tuples)."""
    if not shutil.which("nginx"):
        sys.exit("nginx is not installed: apt-get install -y nginx")
    conf = folder / "nginx.conf"
    listens = "\n".join(f"        listen 127.0.0.1:{p} backlog=4096;" for p in ports)
    conf.write_text(NGINX_CONF.format(dir=folder, listens=listens))
    with process(["nginx", "-c", str(conf), "-p", str(folder)]) as proc:
        wait_for_port(ports[0])
        yield proc


@contextmanager
def process(argv: list[str], **kwargs):
    proc = subprocess.Popen(argv, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def write_probe_config(folder: Path, monitors: list[str], *, interval: str, timeout: str = "5s",
                       extra: str = "", defaults: str = "", storage: str = 'path = "probe.db"') -> tuple[Path, int]:
    """A config with one HTTP monitor per URL in `monitors`; returns (path, web port).
    `storage`: the [storage] lines (bench/engines.py's `Database.storage_toml()` for either engine)."""
    port = free_port()
    lines = [f'[server]\nlisten = "127.0.0.1:{port}"\n[storage]\n{storage}\n'
             f'[page]\ntitle = "Bench"\n[defaults]\ninterval = "{interval}"\ntimeout = "{timeout}"\n{defaults}\n{extra}\n']
    for i, url in enumerate(monitors):
        lines.append(f'[[monitors]]\nid = "m{i}"\ngroup = "g{i % 20}"\ntype = "http"\nurl = "{url}"\n')
    path = folder / "bench.toml"
    path.write_text("\n".join(lines))
    return path, port


@contextmanager
def probe_run(config: Path, log: Path | None = None):
    """`probe run` as the product runs: a real process, its own interpreter."""
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        with process([sys.executable, "-m", "probe", "--log-level", "warning", "run", "-c", str(config)],
                     cwd=ROOT, stdout=out, stderr=subprocess.STDOUT if log else None) as proc:
            yield proc
    finally:
        if log:
            out.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def query(db, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows from a SQLite file (a Path) or from bench/engines.py's `Database` (either engine)."""
    if hasattr(db, "query"):
        return db.query(sql, params)
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def count_results(db, start_ms: int, end_ms: int, where: str = "true") -> int:
    """Results of checks that started in [start_ms, end_ms) (and matching `where`)."""
    return query(db, f"SELECT count(*) FROM results WHERE ts >= ? AND ts < ? AND {where}", (start_ms, end_ms))[0][0]


def lateness(db, start_ms: int, end_ms: int) -> list[int]:
    return sorted(r[0] for r in query(db, "SELECT late FROM results WHERE ts >= ? AND ts < ?", (start_ms, end_ms)))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def now_ms() -> int:
    return int(time.time() * 1000)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Sampler:
    """CPU time and RSS of one process between two instants."""
    pid: int
    cpu0: float = 0.0
    t0: float = 0.0
    max_rss: float = 0.0

    def start(self) -> None:
        self.cpu0, self.t0 = cpu_seconds(self.pid), time.monotonic()

    def sample_rss(self) -> float:
        rss = rss_mb(self.pid)
        self.max_rss = max(self.max_rss, rss)
        return rss

    def cpu_since(self) -> tuple[float, float]:
        """(cpu seconds, wall seconds) since start()."""
        return cpu_seconds(self.pid) - self.cpu0, time.monotonic() - self.t0


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (f"{os.cpu_count()} cpus ({model}), {mem_kb / 2**20:.1f} GiB RAM, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load_average()}")
