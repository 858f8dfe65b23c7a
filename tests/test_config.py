from __future__ import annotations

import json
import os

import pytest

from listend.daemon.config.issues import ConfigIssue
from listend.daemon.config.loader import (
    ConfigIssuesError,
    parse_config,
    parse_config_located,
    read_disabled_plugins,
)
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.stream.preflight import check_sources
from tests.support.cli import run_listend
from tests.support.paths import ROOT, SAMPLE

#: The smallest valid config has a source; tests about other keys append this one.
A_SOURCE = "sources: {idle: {type: file, path: config/samples/hello.wav, enabled: false}}\n"

GOOD = """\
device: kiosk-1
deepgram:
  options:
    model: nova-3
sources:
  hall:
    type: file
    path: config/samples/hello.wav
    sinks: [out]
sinks:
  out:
    type: stdout
"""


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def issues_of(text: str, host) -> list:
    with pytest.raises(ConfigIssuesError) as info:
        parse_config(text, "t.yaml", host)
    return info.value.issues


def test_good_config_parses(host, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = parse_config(GOOD, "t.yaml", host)
    assert config.device == "kiosk-1"
    assert config.sources["hall"].path.name == "hello.wav"
    assert config.sinks_for("hall") == ["out"]


def test_unknown_key_names_key_line_and_column(host):
    text = GOOD.replace("    sinks: [out]\n", "    sinks: [out]\n    devcie: usb\n")
    (issue,) = issues_of(text, host)
    assert (issue.line, issue.column) == (10, 5)
    assert issue.path == ("sources", "hall", "devcie")
    assert "unknown key" in issue.message
    assert "path" in issue.message  # lists what is allowed


def test_wrong_type_says_expected_and_found(host):
    text = GOOD.replace("    model: nova-3\n", "    model: nova-3\n    interim_results: maybe\n")
    (issue,) = issues_of(text, host)
    assert issue.line == 5
    assert "valid boolean" in issue.message
    assert "'maybe'" in issue.message


def test_all_errors_reported_at_once(host):
    text = (
        "device: bad id!\nbogus: 1\nsources:\n  a:\n    type: nope\n"
        "sinks:\n  b: {type: stdout, format: xml}\n"
    )
    issues = issues_of(text, host)
    paths = {i.path for i in issues}
    assert ("device",) in paths
    assert ("bogus",) in paths
    assert ("sources", "a", "type") in paths
    assert ("sinks", "b", "format") in paths
    assert [i.line for i in issues] == sorted(i.line for i in issues)


def test_unknown_type_suggests(host):
    (issue,) = issues_of("sources:\n  a:\n    type: fiel\n    path: x\n", host)
    assert "did you mean 'file'" in issue.message


def test_rest_only_stream_option_rejected_with_reason(host):
    text = GOOD.replace("    model: nova-3\n", "    model: nova-3\n    summarize: true\n")
    (issue,) = issues_of(text, host)
    assert "not supported on streaming" in issue.message


def test_source_naming_an_undefined_sink(host):
    (issue,) = issues_of(GOOD.replace("[out]", "[out, nope]"), host)
    assert issue.path == ("sources", "hall", "sinks", 1)
    assert issue.line == 9


def test_yaml_syntax_error_has_position(host):
    (issue,) = issues_of("sources:\n  a: [1, 2\n", host)
    assert issue.line is not None
    assert "YAML" in issue.message


def test_duplicate_key(host):
    issues = issues_of("device: a\ndevice: b\n", host)
    assert any(i.message == "duplicate key" and i.line == 2 for i in issues)


def test_secret_env_and_file(host, tmp_path, monkeypatch):
    monkeypatch.setenv("LISTEND_TEST_KEY", "sekrit-value")
    text = "deepgram:\n  api_key: $env:LISTEND_TEST_KEY\n" + A_SOURCE
    config = parse_config(text, "t.yaml", host)
    assert config.deepgram.api_key is not None
    assert config.deepgram.api_key.reveal() == "sekrit-value"
    assert "sekrit" not in repr(config)
    assert "sekrit" not in config.model_dump_json()
    (tmp_path / "cred").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = parse_config("deepgram:\n  api_key: $credential:cred\n" + A_SOURCE, "t.yaml", host)
    assert config.deepgram.api_key.reveal() == "from-credential"


def test_literal_secret_rejected_without_echoing_it(host):
    (issue,) = issues_of("deepgram:\n  api_key: 0123456789abcdef\n", host)
    assert "0123456789abcdef" not in issue.message
    assert "secret reference" in issue.message
    assert issue.line == 2


def test_cli_validate_example_ok():
    result = run_listend("validate", "config/listend.example.yaml")
    assert result.returncode == 0, result.stderr


def test_cli_validate_bad_exits_78_without_traceback(write_config):
    path = write_config(
        "device: x\nsources:\n  s:\n    type: file\n    path: a.wav\n    colour: red\n"
    )
    result = run_listend("validate", str(path))
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert f"{path}:6:5: sources.s.colour: unknown key" in result.stderr


def test_cli_missing_config_exits_78():
    result = run_listend("validate", "/nonexistent/listend.yaml")
    assert result.returncode == 78
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_config_from_env(write_config):
    path = write_config("device: envcfg\n" + A_SOURCE)
    result = run_listend("validate", env={**os.environ, "LISTEND_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout


def test_schema_is_valid_json_schema_with_plugin_options():
    result = run_listend("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    file_source = schema["$defs"]["source:file"]
    assert file_source["properties"]["type"] == {"const": "file", "description": "source type"}
    assert "realtime" in file_source["properties"]
    assert schema["$defs"]["sink:stdout"]["additionalProperties"] is False


def test_validate_reports_sources_that_cannot_start(write_config, tmp_path):
    path = write_config(
        "sources:\n"
        f"  hall:\n    type: file\n    path: {SAMPLE}\n"
        "    stream: {sample_rate: 8000}\n"
        f"  gone:\n    type: file\n    path: {tmp_path}/missing.wav\n"
    )
    result = run_listend("validate", str(path))
    assert result.returncode == 78, result.stdout
    assert "Traceback" not in result.stderr
    assert "stream.sample_rate is 8000 but the source delivers 16000" in result.stderr
    assert "missing.wav" in result.stderr


def test_disabled_plugins_are_read_alone_and_strictly():
    text = "plugins:\n  disabled: [ mqtt_sink , echo]\nsources: not even looked at\n"
    assert read_disabled_plugins(text, "t.yaml") == ["mqtt_sink", "echo"]
    assert read_disabled_plugins("device: x\n", "t.yaml") == []
    with pytest.raises(ConfigIssuesError) as info:
        read_disabled_plugins("plugins:\n  disabled: [a, '']\n", "t.yaml")
    (issue,) = info.value.issues
    assert (issue.path, issue.line) == (("plugins", "disabled"), 2)
    assert "empty" in issue.message


def test_disabled_plugins_key_is_part_of_the_config(host):
    config = parse_config("plugins: {disabled: [mqtt_sink]}\n" + A_SOURCE, "t.yaml", host)
    assert config.plugins.disabled == ["mqtt_sink"]


def test_preflight_problems_carry_the_line_of_their_key(host, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = (
        "deepgram:\n  options: {channels: 2}\n"
        "sources:\n"
        f"  hall:\n    type: file\n    path: {SAMPLE}\n"
        "    stream: {sample_rate: 8000}\n"
        f"  gone:\n    type: file\n    path: {tmp_path}/missing.wav\n"
        "  lobby:\n    type: file\n    path: config/samples/hello.wav\n"
    )
    config, positions = parse_config_located(text, "t.yaml", host)
    with pytest.raises(ConfigIssuesError) as info:
        check_sources(config, host, filename="t.yaml", positions=positions)
    lobby, hall, gone = info.value.issues  # in file order
    assert (hall.path, hall.line, hall.column) == (
        ("sources", "hall", "stream", "sample_rate"),
        7,
        14,
    )
    assert hall.message.startswith("stream.sample_rate is 8000 but the source delivers 16000")
    assert (gone.path, gone.line, gone.column) == (("sources", "gone"), 8, 3)
    assert "missing.wav" in gone.message
    assert (lobby.path, lobby.line) == (("deepgram", "options", "channels"), 2)
    rendered = str(info.value)
    assert "t.yaml:7:14: sources.hall.stream.sample_rate: stream.sample_rate is 8000" in rendered
    assert "sources that cannot start" in rendered


def test_issue_rendering_without_a_position():
    issue = ConfigIssue(("sinks", "out", "topics", 0), "bad topic")
    assert issue.render("t.yaml") == "t.yaml: sinks.out.topics[0]: bad topic"
