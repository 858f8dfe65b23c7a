"""Hostile config files: each is refused with one message (file, line, what is wrong), exit 78,
never a traceback, never unbounded memory or time; numbers have bounds; `--show` shows all."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from listend.cli import main
from listend.daemon.config.loader import ConfigIssuesError, parse_config
from listend.daemon.config.reading import MAX_NODES
from listend.daemon.plugin.manager import load_plugins
from listend.transcribe import run as transcribe_run
from tests.support.bounds import config_models, has_upper_bound, numeric_fields
from tests.support.cli import run_listend
from tests.support.hostile import HELLO, HOSTILE, Hostile, alias_bomb, good_config


@pytest.fixture(scope="module")
def host():
    return load_plugins()


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.name)
def test_hostile_config_gets_one_message(case: Hostile, tmp_path: Path, capsys) -> None:
    path = tmp_path / "listend.yaml"
    path.write_bytes(case.data(tmp_path / "state"))
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == case.exit_code, err
    assert case.expect in (out if code == 0 else err)
    if code:
        assert err.startswith((f"listend: invalid config {path}", "listend: config"))
        assert "Traceback" not in err
        longest = 2 * len(str(path)) + 400  # a line quotes at most a few hundred characters
        assert all(len(line) < longest for line in err.splitlines()), "a value echoed in full"


@pytest.mark.parametrize("name", ["latin1", "deep-brackets", "alias-bomb", "state-dir-a-file"])
def test_run_with_a_hostile_config_exits_78_with_one_message(name: str, tmp_path: Path) -> None:
    case = next(c for c in HOSTILE if c.name == name)
    path = tmp_path / "listend.yaml"
    path.write_bytes(case.data(tmp_path / "state"))
    result = run_listend("run", str(path), timeout=60)
    assert result.returncode == 78, result.stderr
    assert case.expect in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists(), "refused before anything started"


def test_alias_bomb_is_refused_at_the_alias_without_building_it(host) -> None:
    with pytest.raises(ConfigIssuesError) as info:
        parse_config(alias_bomb(levels=30), "bomb.yaml", host)  # 10**30 nodes
    (issue,) = info.value.issues
    assert str(MAX_NODES) in issue.message
    assert issue.line == 5  # the first alias past the limit: 10**5 nodes


def test_aliases_within_the_limit_still_work(host, tmp_path: Path) -> None:
    text = good_config(
        tmp_path,
        extra="deepgram: {options: &opts {model: nova-3, smart_format: true}}\n",
        source=f"  hall: {{type: file, path: {HELLO}, stream: *opts}}\n",
    )
    config = parse_config(text, "t.yaml", host)
    assert config.sources["hall"].stream.smart_format is True


def test_every_number_a_config_can_set_has_bounds(host) -> None:
    unbounded = sorted(
        name
        for model in config_models(host)
        for name, metadata in numeric_fields(model)
        if not has_upper_bound(metadata)
    )
    assert unbounded == []


def test_a_bound_error_names_the_range(host, tmp_path: Path) -> None:
    text = good_config(tmp_path, extra="deepgram: {keepalive_interval: 1e999}\n")
    with pytest.raises(ConfigIssuesError) as info:
        parse_config(text, "t.yaml", host)
    (issue,) = info.value.issues
    assert issue.path == ("deepgram", "keepalive_interval")
    assert issue.message.endswith("; allowed: 0 < value < 10; found '1e999'")


def test_validate_show_prints_every_plugin_option_and_only_secret_references(
    tmp_path: Path,
) -> None:
    path = tmp_path / "listend.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            state_dir: {tmp_path}/state
            deepgram: {{api_key: $env:SHOW_DG}}
            sources:
              hall: {{type: file, path: {HELLO}}}
              cmd: {{type: command, command: [cat], env: {{X: "1"}}}}
            sinks:
              hook: {{type: http, url: "http://127.0.0.1:9/x", bearer_token: $env:SHOW_TOKEN}}
              broker: {{type: mqtt, host: 127.0.0.1, username: $env:SHOW_PW,
                        password: $env:SHOW_PW}}
        """)
    )
    secrets = {"SHOW_DG": "dg-sekrit", "SHOW_TOKEN": "token-sekrit", "SHOW_PW": "pw-sekrit"}
    result = run_listend("validate", "--show", str(path), env={**_environ(), **secrets})
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout.split("\n", 1)[1])  # validate --show prints YAML
    assert shown["sources"]["hall"]["path"] == str(HELLO)
    assert shown["sources"]["cmd"]["command"] == ["cat"]
    assert shown["sinks"]["hook"]["url"] == "http://127.0.0.1:9/x"
    assert shown["sinks"]["broker"]["host"] == "127.0.0.1"
    assert shown["sinks"]["hook"]["bearer_token"] == "$env:SHOW_TOKEN"
    assert shown["deepgram"]["api_key"] == "$env:SHOW_DG"
    assert not any(value in result.stdout for value in secrets.values())


def _environ() -> dict[str, str]:
    import os  # noqa: PLC0415

    return dict(os.environ)


def test_a_preflight_problem_at_run_has_its_line_and_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "listend.yaml"
    missing = tmp_path / "missing.wav"
    path.write_text(
        good_config(tmp_path / "state", source=f"  hall: {{type: file, path: {missing}}}\n")
    )
    result = run_listend("run", str(path))
    assert result.returncode == 78, result.stderr
    assert f"{path}:4:3: sources.hall: {missing} does not exist" in result.stderr


def test_a_plugin_validator_failing_its_own_way_is_a_config_issue(tmp_path: Path) -> None:
    from pydantic import model_validator  # noqa: PLC0415

    from listend.api import Sink, SinkConfig, hookimpl  # noqa: PLC0415

    class TouchyConfig(SinkConfig):
        @model_validator(mode="after")
        def _explode(self) -> TouchyConfig:
            raise LookupError("the plugin's own bug")

    class TouchySink(Sink):
        type_name = "touchy"
        config_model = TouchyConfig

    class Plugin:
        @hookimpl
        def register_sink_types(self, register) -> None:
            register(TouchySink)

    host = load_plugins(extra=[Plugin()])
    text = good_config(tmp_path).replace("{type: stdout}", "{type: touchy}")
    with pytest.raises(ConfigIssuesError) as info:
        parse_config(text, "t.yaml", host)
    (issue,) = info.value.issues
    assert issue.path == ("sinks", "out")
    assert "LookupError: the plugin's own bug" in issue.message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a directory; give an audio file"),
        (lambda p: subprocess.run(["mkfifo", str(p)], check=True), "is not a regular file"),
        (lambda p: None, "no such file"),
    ],
    ids=["directory", "fifo", "missing"],
)
def test_transcribe_says_what_is_wrong_with_the_input(tmp_path: Path, make, message: str) -> None:
    from listend.cli import build_parser  # noqa: PLC0415
    from listend.daemon.errors import ListendError  # noqa: PLC0415

    target = tmp_path / "input.wav"
    make(target)
    args = build_parser().parse_args(["transcribe", str(target)])
    with pytest.raises(ListendError, match=message):
        transcribe_run(args)
