"""Keep the docs honest: the README's commands, .ci/run and the example config stay in step with the code."""
import re
from pathlib import Path

from probe import checks, notifiers
from probe.config.cluster import ClusterConfig
from probe.config.loader import SECTIONS, MonitorSettings
from probe.config.maintenance import MaintenanceConfig
from probe.config.schema import field_types
from probe.config.subscribers import SubscribersConfig, WebhookSubscriber

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLE = (ROOT / "config.example.toml").read_text()


def readme_commands():
    return re.findall(r"```sh\n(.+?)\n```", README)


def test_the_readme_opens_with_the_two_setup_commands():
    run, test = readme_commands()[:2]
    assert "probe run -c config.example.toml" in run
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_word_for_word():
    test = readme_commands()[1]
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def documented(key: str) -> bool:
    return re.search(rf"^\s*#?\s*{re.escape(key)}\s*=", EXAMPLE, re.MULTILINE) is not None


def test_every_config_key_is_documented_in_the_example():
    keys = set(field_types(MonitorSettings))
    for cls in SECTIONS.values():
        keys |= set(field_types(cls))
    for check in checks.REGISTRY.values():
        keys |= set(field_types(check.Options))
    keys |= set(field_types(notifiers.base.NotifierSettings)) | set(field_types(MaintenanceConfig))
    keys |= set(field_types(ClusterConfig))
    keys |= (set(field_types(SubscribersConfig)) - {"webhooks"}) | set(field_types(WebhookSubscriber))
    for channel in notifiers.REGISTRY.values():
        keys |= {k.rstrip("_") for k in field_types(channel.Options)}
    missing = sorted(k for k in keys if not documented(k))
    assert missing == []


def test_every_check_type_is_in_the_readme_and_the_example():
    for kind in checks.REGISTRY:
        assert f"`{kind}`" in README
        assert f'type = "{kind}"' in EXAMPLE


def test_the_readme_lists_every_key_of_each_check_type():
    for kind, check in checks.REGISTRY.items():
        row = re.search(rf"^\| `{kind}` \|(.+)$", README, re.MULTILINE)
        assert row, f"no row for {kind} in the README's table of check keys"
        missing = [k for k in field_types(check.Options) if f"`{k}`" not in row.group(1)]
        assert missing == [], kind


def test_every_notifier_type_is_in_the_readme_and_the_example():
    for kind, channel in notifiers.REGISTRY.items():
        assert f'type = "{kind}"' in EXAMPLE, kind
        row = re.search(rf"^\| `{kind}` \|(.+)$", README, re.MULTILINE)
        assert row, f"no row for {kind} in the README's table of notifier keys"
        missing = [k for k in field_types(channel.Options) if f"`{k.rstrip('_')}`" not in row.group(1)]
        assert missing == [], kind


def test_the_readme_and_the_example_list_every_notifier_event():
    listed = re.search(r"`events` \(any of (.+?); default all\)", README, re.DOTALL)
    assert listed, "no list of notifier events in the README"
    example = re.search(r"^#\s+events = \[(.+?)\]", EXAMPLE, re.MULTILINE)
    assert example, "no events line among the notifier keys of the example"
    for event in notifiers.base.EVENTS:
        assert f"`{event}`" in listed.group(1), event
        assert f'"{event}"' in example.group(1), event


def test_the_compose_example_runs_every_instance_on_one_config_in_a_location_it_lists(monkeypatch):
    import yaml

    from probe.config.loader import load_config

    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    instances = {name: s["environment"] for name, s in compose["services"].items() if "PROBE_INSTANCE" in
                 s.get("environment", {})}
    assert len({env["PROBE_LOCATION"] for env in instances.values()}) >= 2
    for name, env in instances.items():
        for key, value in env.items():
            monkeypatch.setenv(key, "secret" if value.startswith("$") else value)
        config = load_config(ROOT / "deploy" / "probe.toml")
        assert config.cluster.instance == name and config.cluster.location in config.cluster.names
        assert config.storage_target.kind == "postgresql"
