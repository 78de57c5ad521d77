"""The Docker image's install steps without a container engine: build the wheel, install it
into a clean virtual environment, run it; and keep the README's docker run line, the
Dockerfile and the example config in step."""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp

from tests.cli.test_main import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()
EXAMPLE = (ROOT / "config.example.toml").read_text()


def test_the_readme_docker_run_line_matches_the_dockerfile():
    run = next(line for line in README.splitlines() if line.startswith("docker run "))
    assert "-p 8080:8080" in run and "EXPOSE 8080" in DOCKERFILE
    assert ":/data" in run and 'VOLUME ["/data"]' in DOCKERFILE
    assert ":/etc/probe/config.toml" in run and "PROBE_CONFIG=/etc/probe/config.toml" in DOCKERFILE
    assert "ping_group_range" in run
    assert re.search(r"^USER probe$", DOCKERFILE, re.MULTILINE) and "--uid 10001" in DOCKERFILE
    assert "127.0.0.1:8080/healthz" in DOCKERFILE  # the HEALTHCHECK
    # The image rewrites these two lines of the example; if they moved, the sed would do nothing.
    assert re.search(r'^listen = "127\.0\.0\.1:8080"', EXAMPLE, re.MULTILINE)
    assert re.search(r'^path = "probe\.db"', EXAMPLE, re.MULTILINE)
    assert "COPY probe probe" in DOCKERFILE


async def test_the_built_wheel_installs_into_a_clean_venv_and_serves_the_page(tmp_path):
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("probe-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # one top-level package: no generic `web` or `checks` in site-packages
        assert {name.split("/")[0] for name in archive.namelist()} == {"probe", "probe-0.1.0.dist-info"}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, capture_output=True)
    probe = str(venv / "bin" / "probe")
    out = subprocess.run([probe, "validate", "-c", str(ROOT / "config.example.toml")], capture_output=True, text=True)
    assert out.returncode == 0 and "ok (5 monitors)" in out.stdout, out.stderr

    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(EXAMPLE.replace('listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{port}"')
                      .replace('language = "en"', 'language = "zh-CN"'))
    proc = await asyncio.create_subprocess_exec(probe, "--log-level", "warning", "run", "-c", str(config),
                                                cwd=tmp_path, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                page = await response.text()
                assert response.status == 200 and "Acme Status" in page  # templates, static and i18n are packaged
                assert any(banner in page for banner in ("所有系统运行正常", "性能下降", "部分服务中断", "重大服务中断", "维护中"))
            async with session.get(f"http://127.0.0.1:{port}/static/style.css") as response:
                assert response.status == 200
        from probe.notifiers.text import (
            words,  # the notifier templates travel in the wheel too
        )
        listing = subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import pathlib, probe.notifiers as n; p = pathlib.Path(n.__file__).parent;"
                                  "print(sorted(x.name for x in (p / 'templates').iterdir()),"
                                  " sorted(x.name for x in (p / 'i18n').iterdir()))"],
                                 capture_output=True, text=True, check=True).stdout
        assert "message.md.j2" in listing and "zh-CN.toml" in listing and words("zh-CN")
    finally:
        proc.terminate()
        await proc.wait()
