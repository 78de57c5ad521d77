"""Name resolution the way production does it, through the operating system, answered by the
DNS server of tests/peers: inside a network namespace of the test's own (loopback only, so
nothing leaves the machine) and a mount namespace whose /etc/resolv.conf is a bind-mounted
file naming 127.0.0.1, where the server answers on port 53.

`outcomes(tmp)` runs this module as a program there (`unshare`, as the ICMP tests do) and
returns what every scenario gave; the program prints them as JSON. Nothing is patched: the
HTTP check resolves with aiohttp's default resolver (glibc's getaddrinfo), and the DNS check
reads the nameserver from /etc/resolv.conf with dnspython.
"""
from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ZONE = {("shop.test.", "A"): ["127.0.0.1"], ("app.test.", "A"): ["192.0.2.1"]}
PAGE = "Welcome to the shop"


def outcomes(tmp: Path) -> dict:
    import pytest

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) to make private namespaces")
    command = ["unshare", "--net", "--mount", "--map-root-user", "sh", "-ec"]
    trial = subprocess.run([*command, "mount --bind /dev/null /etc/resolv.conf"], capture_output=True, text=True)
    if trial.returncode:
        pytest.skip(f"cannot make a network and mount namespace here: {trial.stderr.strip()}")
    resolv, empty = tmp / "resolv.conf", tmp / "no-nameserver.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    empty.write_text("# a machine with no resolver configured\n")
    program = shlex.join([sys.executable, "-m", "tests.peers.system_resolver", str(empty)])
    setup = f"ip link set lo up\nmount --bind {shlex.quote(str(resolv))} /etc/resolv.conf\nexec {program}"
    proc = subprocess.run([*command, setup], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _outcome(result) -> dict:
    return {"status": result.status.label, "reason": result.reason, "details": result.details}


async def _scenarios(empty_conf: str) -> dict:
    from aiohttp import web

    from probe.checks.base import CheckContext, Progress
    from probe.checks.dns import DnsCheck, DnsOptions, _system_nameserver
    from probe.checks.http import HttpCheck, HttpOptions, make_session
    from tests.peers.dns_server import DnsServer

    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text=PAGE))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    out: dict = {}
    async with DnsServer(ZONE, port=53) as server:
        async with make_session() as session:
            for name, url in (("http_by_name", f"http://shop.test:{port}/"), ("http_nxdomain", "http://nowhere.test/")):
                ctx = CheckContext(timeout=2.0, progress=Progress(), http=session)
                out[name] = _outcome(await HttpCheck(HttpOptions(url=url)).run(ctx))
        ctx = CheckContext(timeout=2.0, progress=Progress())
        out["dns_system"] = _outcome(await DnsCheck(DnsOptions(query="app.test")).run(ctx))
        out["queries"] = server.queries
        # A machine without a resolver. The check reads the file once a process, so forget what
        # it read, as a process started now would not know it.
        subprocess.run(["mount", "--bind", empty_conf, "/etc/resolv.conf"], check=True)
        _system_nameserver.cache_clear()
        ctx = CheckContext(timeout=2.0, progress=Progress())
        out["dns_no_resolver"] = _outcome(await DnsCheck(DnsOptions(query="app.test")).run(ctx))
    await runner.cleanup()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_scenarios(sys.argv[1]))))
