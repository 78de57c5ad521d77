"""A throwaway PostgreSQL server for the suite: Debian's binaries, `initdb` into a temporary
folder and `pg_ctl start` on a free loopback port, once per session; a fresh database per test.

Run as root (CI), the server runs as the `postgres` user (initdb refuses root). Without
PostgreSQL on the machine the tests that need it are skipped with the reason; `.ci/run`
installs it, so CI runs them.
"""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

VERSIONS_DIR = Path("/usr/lib/postgresql")


def binaries() -> Path | None:
    """The newest installed server's bin folder (initdb and pg_ctl are not on PATH on Debian)."""
    found = sorted((p for p in VERSIONS_DIR.glob("*/bin") if (p / "initdb").exists()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`start()`, then `url(database)`, `create_database()`, `stop()`; also `pg_ctl` for fault tests."""

    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        self.bin = bin_dir
        self.durable = durable
        self.folder = Path(tempfile.mkdtemp(prefix="probe-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = "postgres"
        self._as_root = os.geteuid() == 0
        self._names = itertools.count(1)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, cwd=self.folder)

    def start(self) -> "PostgresServer":
        if self._as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n"
                       "max_connections = 300\n")
            # Loopback only; a throwaway cluster need not survive a power cut (fsync off). The
            # benchmarks ask for a durable one, as production runs: every commit flushed to disk.
            conf.write("fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n" if self.durable else
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        # Loopback only, and no password but for the role `pw`, which the wrong-password test uses.
        (self.data / "pg_hba.conf").write_text("host all pw 127.0.0.1/32 scram-sha-256\n"
                                               "host all all 127.0.0.1/32 trust\n")
        self.pg_ctl("start")
        return self

    def pg_ctl(self, action: str) -> None:
        args = ["pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.folder / "server.log")]
        self._run(*args, *(["-m", "immediate"] if action == "stop" else []), action)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres", "-q",
                  "-c", f"CREATE DATABASE {name}")
        return self.url(name)

    def postmaster_pid(self) -> int:
        """The server's first process, parent of every backend (the benchmarks sum their CPU)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
