"""plan_reload: only what changed is restarted; routing changes restart nothing."""

from __future__ import annotations

import pytest

from listend.daemon.config.loader import parse_config
from listend.daemon.config.models import ListendConfig
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.service.reload import plan_reload
from tests.support.paths import ROOT

BASE = """\
device: kiosk-1
state_dir: /tmp/listend-plan
deepgram:
  api_key: $env:PLAN_KEY
  options: {model: nova-3}
sources:
  hall:
    type: file
    path: config/samples/hello.wav
  door:
    type: file
    path: config/samples/hello.wav
    sinks: [a]
sinks:
  a: {type: stdout}
  b: {type: stdout, format: jsonl}
"""


@pytest.fixture(scope="module")
def host():
    return load_plugins()


@pytest.fixture
def parse(host, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PLAN_KEY", "key-one")

    def parse(text: str) -> ListendConfig:
        return parse_config(text, "t.yaml", host)

    return parse


def test_same_config_changes_nothing(parse) -> None:
    plan = plan_reload(parse(BASE), parse(BASE))
    assert (plan.stop_sources, plan.start_sources, plan.stop_sinks, plan.start_sinks) == (
        [],
        [],
        [],
        [],
    )
    assert plan.summary() == "no source or sink changed"


def test_one_changed_sink_restarts_only_that_sink(parse) -> None:
    plan = plan_reload(parse(BASE), parse(BASE.replace("format: jsonl", "format: captions")))
    assert plan.stop_sinks == plan.start_sinks == ["b"]
    assert plan.stop_sources == plan.start_sources == []


def test_receive_changes_restart_nothing(parse) -> None:
    new = BASE.replace("  a: {type: stdout}", "  a: {type: stdout, receive: [final, interim]}")
    plan = plan_reload(parse(BASE), parse(new))
    assert plan.stop_sources == plan.stop_sinks == plan.start_sources == plan.start_sinks == []


def test_a_sink_fed_a_new_source_restarts_alone(parse) -> None:
    """Sinks are told their sources at start (Home Assistant discovery needs them)."""
    new = BASE.replace("    sinks: [a]\n", "    sinks: [a, b]\n")
    plan = plan_reload(parse(BASE), parse(new))
    assert plan.stop_sinks == plan.start_sinks == ["b"]
    assert plan.stop_sources == plan.start_sources == []


def test_source_restarts_on_its_own_options_or_stream_options(parse) -> None:
    new = BASE.replace(
        "    sinks: [a]\n", "    sinks: [a]\n    stream: {keywords: ['listend:2']}\n"
    )
    assert plan_reload(parse(BASE), parse(new)).stop_sources == ["door"]
    new = BASE.replace("    sinks: [a]\n", "    sinks: [a]\n    loop: true\n")
    plan = plan_reload(parse(BASE), parse(new))
    assert plan.stop_sources == plan.start_sources == ["door"]


def test_global_stream_options_restart_the_sources_that_inherit_them(parse) -> None:
    old = BASE.replace("    sinks: [a]\n", "    sinks: [a]\n    stream: {model: nova-2}\n")
    new = old.replace("options: {model: nova-3}", "options: {model: nova-3-medical}")
    plan = plan_reload(parse(old), parse(new))
    assert plan.stop_sources == ["hall"]  # door sets its own model, so it is unaffected


def test_connection_settings_restart_every_source(parse, monkeypatch) -> None:
    old = parse(BASE)
    monkeypatch.setenv("PLAN_KEY", "key-two")  # same reference, new secret value
    plan = plan_reload(old, parse(BASE))
    assert plan.stop_sources == plan.start_sources == ["hall", "door"]
    assert plan.stop_sinks == []
    plan = plan_reload(old, parse(BASE.replace("options:", "keepalive_interval: 3\n  options:")))
    assert plan.stop_sources == ["hall", "door"]


def test_added_removed_and_disabled(parse) -> None:
    new = (
        BASE.replace("  b: {type: stdout, format: jsonl}\n", "  c: {type: stdout}\n")
        .replace("  hall:\n    type: file\n", "  hall:\n    type: file\n    enabled: false\n")
        .replace(
            "sources:\n", "sources:\n  lobby:\n    type: file\n    path: config/samples/hello.wav\n"
        )
    )
    plan = plan_reload(parse(BASE), parse(new))
    assert plan.stop_sources == ["hall"]
    assert plan.start_sources == ["lobby"]
    # a now hears lobby instead of hall: restarted to be told so
    assert plan.stop_sinks == ["a", "b"]
    assert plan.start_sinks == ["a", "c"]
    assert "started sources lobby" in plan.summary()
    assert "restarted sinks a" in plan.summary()
    assert "stopped sinks b" in plan.summary()


def test_device_and_state_dir_need_a_restart(parse) -> None:
    new = BASE.replace("kiosk-1", "kiosk-2").replace("listend-plan", "elsewhere")
    plan = plan_reload(parse(BASE), parse(new))
    assert len(plan.refused) == 2
    assert "device changed" in plan.refused[0]
    assert "systemctl restart listend" in plan.refused[0]


def test_changed_triggers_restart_their_sources_and_the_sinks_they_reach(parse) -> None:
    with_triggers = BASE + "triggers:\n  help: {phrases: [help]}\n"
    plan = plan_reload(parse(BASE), parse(with_triggers))
    assert plan.stop_sources == plan.start_sources == ["hall", "door"]  # matching, boosting
    assert plan.stop_sinks == plan.start_sinks == ["a", "b"]  # HA discovery's event types
    own = BASE.replace(
        "    sinks: [a]\n", "    sinks: [a]\n    triggers: {door: {phrases: [open the door]}}\n"
    )
    plan = plan_reload(parse(BASE), parse(own))
    assert plan.stop_sources == ["door"]
    assert plan.stop_sinks == ["a"]  # b does not receive door
