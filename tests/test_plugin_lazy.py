"""Built-in types are stand-ins: a daemon imports a plugin's module only when its config uses
the type, and a stand-in builds (and checks) the real class."""

from __future__ import annotations

import json
import os

import pytest

from listend.api import PluginContext, lazy_sink, lazy_source
from listend.daemon.errors import PluginError
from listend.plugins.stdout_sink import StdoutSink
from tests.support.cli import run_python
from tests.support.paths import ROOT

CONFIG = """device: t
state_dir: {state}
deepgram:
  url: http://127.0.0.1:9
  api_key: $env:DG_LAZY_KEY
sources: {{s: {{type: file, path: {wav}}}}}
sinks: {{out: {{type: stdout}}}}
"""
VALIDATE = """
import json, runpy, sys
sys.argv = ["listend", "validate", sys.argv[1]]
try:
    runpy.run_module("listend", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(sys.modules)))
"""
UNUSED = ["microphone", "command_source", "mqtt_sink", "http_sink", "file_sink"]
UNUSED += ["captions_sink", "history_sink"]


def test_a_stdout_config_imports_no_other_plugin_module(tmp_path):
    config = tmp_path / "listend.yaml"
    wav = ROOT / "config" / "samples" / "hello.wav"
    config.write_text(CONFIG.format(state=tmp_path / "state", wav=wav))
    env = {**os.environ, "DG_LAZY_KEY": "k"}
    done = run_python(["-c", VALIDATE, str(config)], env=env)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"listend.plugins.file_source", "listend.plugins.stdout_sink"} <= modules
    assert not modules & {f"listend.plugins.{name}" for name in UNUSED}
    assert not modules & {"paho", "aiohttp", "httpx"}


def test_a_stand_in_builds_the_real_class(tmp_path):
    stand_in = lazy_sink("stdout", "listend.plugins.stdout_sink:StdoutSink")
    assert stand_in.config_model is StdoutSink.config_model
    config = stand_in.config_model.model_validate({"type": "stdout"})
    sink = stand_in("out", config, PluginContext("dev", tmp_path))
    assert type(sink) is StdoutSink


@pytest.mark.parametrize(
    ("stand_in", "why"),
    [
        (lazy_sink("shout", "listend.plugins.stdout_sink:StdoutSink"), "sink type 'shout'"),
        (lazy_source("stdout", "listend.plugins.stdout_sink:StdoutSink"), "source type"),
    ],
)
def test_a_stand_in_for_another_type_is_a_plugin_error(stand_in, why):
    with pytest.raises(PluginError, match=why):
        _ = stand_in.config_model
