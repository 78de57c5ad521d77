"""`probe incident ...` from a shell against a real `probe run`: one writer, the running process."""
import asyncio
import os
import signal

from tests.cli.test_main import free_port, probe_cli
from tests.test_crash import start_probe

TOKEN = "cli-token-123"


async def run_incident_from_the_cli(config, postmortem) -> str:
    """Open "API errors" on monitor api, then identified, monitoring, resolved and a postmortem."""
    cli = ("incident", "-c", str(config))
    code, out, err = await probe_cli(*cli, "open", "--title", "API errors", "--impact", "major",
                                     "--monitor", "api")
    assert code == 0, err
    incident_id = out.split()[0].lstrip("#")
    for step in (["update", incident_id, "--status", "identified", "--body", "Bad deploy found."],
                 ["update", incident_id, "--status", "monitoring"],
                 ["resolve", incident_id],
                 ["postmortem", incident_id, "--file", str(postmortem)]):
        code, out, err = await probe_cli(*cli, *step)
        assert code == 0, (step, err)
    return incident_id


async def test_an_operator_runs_an_incident_from_the_command_line(write_config, tmp_path):
    port = free_port()
    config = write_config(f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "${{PROBE_TEST_ADMIN_TOKEN}}"
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "api"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        interval = "1h"
    """)
    os.environ["PROBE_TEST_ADMIN_TOKEN"] = TOKEN
    postmortem = tmp_path / "pm.md"
    postmortem.write_text("# Summary\nA bad deploy; no data was lost.\n")
    proc = await start_probe(config, port)
    try:
        cli = ("incident", "-c", str(config))
        incident_id = await run_incident_from_the_cli(config, postmortem)
        listed = await probe_cli(*cli, "list")
        wrong = await probe_cli(*cli, "--token", "nope", "list")
        missing = await probe_cli(*cli, "resolve", "4242")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        del os.environ["PROBE_TEST_ADMIN_TOKEN"]
    (line,) = listed[1].splitlines()
    assert line.startswith(f"#{incident_id}  resolved") and "API errors" in line and "[postmortem]" in line
    assert "api" in line
    assert wrong[0] == 1 and "a valid admin token is required (HTTP 401)" in wrong[2]
    assert missing[0] == 1 and "incident not found (HTTP 404)" in missing[2]
    assert TOKEN not in listed[1] + listed[2] + wrong[2]


async def test_it_says_plainly_when_no_token_is_configured(write_config):
    config = write_config("""
        [[monitors]]
        id = "api"
        type = "tcp"
        host = "127.0.0.1"
        port = 9
    """)
    code, out, err = await probe_cli("incident", "-c", str(config), "list", cwd=None)
    assert code == 2
    assert err.strip() == "probe: no admin token: set [server] admin_token, $PROBE_ADMIN_TOKEN or --token"


async def test_an_operator_schedules_and_cancels_maintenance_from_the_command_line(write_config):
    port = free_port()
    config = write_config(f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "api"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        interval = "1h"
        [[maintenance]]
        id = "weekly"
        title = "Weekly patching"
        monitors = ["api"]
        cron = "0 3 * * sun"
        duration = "1h"
    """)
    proc = await start_probe(config, port)
    cli = ("maintenance", "-c", str(config))
    try:
        code, out, err = await probe_cli(*cli, "add", "--title", "Emergency DB fix", "--monitor", "api",
                                         "--duration", "30m", "--description", "Writes pause briefly.")
        assert code == 0, err
        window_id = out.split()[0]
        assert " in_progress " in out and "[admin]" in out
        listed = (await probe_cli(*cli, "list"))[1]
        assert "Emergency DB fix" in listed and "Weekly patching" in listed and "[config]" in listed
        import aiohttp
        async with aiohttp.ClientSession() as session:  # the status page sees it at once
            async with session.get(f"http://127.0.0.1:{port}/api/v2/scheduled-maintenances/active.json") as response:
                active = (await response.json())["scheduled_maintenances"]
        assert [m["name"] for m in active] == ["Emergency DB fix"]
        refused = await probe_cli(*cli, "cancel", "weekly")
        bad = await probe_cli(*cli, "add", "--title", "X", "--monitor", "ghost", "--duration", "1h")
        code, out, err = await probe_cli(*cli, "cancel", window_id)
        assert code == 0 and out.strip() == f"cancelled {window_id} (ended now)", err
        after = (await probe_cli(*cli, "list"))[1]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/v2/scheduled-maintenances.json") as response:
                v2 = {m["name"]: m["status"] for m in (await response.json())["scheduled_maintenances"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    assert refused[0] == 1 and "defined in the config file" in refused[2]
    assert bad[0] == 1 and "unknown: ghost" in bad[2]
    line = next(line for line in after.splitlines() if line.startswith(window_id))
    # It ended when cancelled, and api has not checked up since: "verifying", in the CLI as in v2.
    assert line.split()[1] == v2["Emergency DB fix"] == "verifying"
