from __future__ import annotations

import inspect
import os
import re

import pytest

from listend.api import hookimpl
from listend.daemon.errors import PluginError
from listend.daemon.plugin import hookspecs
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.sink import Sink, SinkConfig
from tests.conftest import ROOT, run_listend


def test_builtins_come_through_entry_points():
    host = load_plugins()
    assert "file" in host.sources.names()
    assert "stdout" in host.sinks.names()
    info = {i.name: i for i in host.infos}
    assert info["file_source"].package == "listend"


def test_blocked_entry_point_is_skipped():
    host = load_plugins(blocked=["stdout_sink"])
    assert "stdout" not in host.sinks.names()


def test_duplicate_type_names_both_plugins():
    class Dup(Sink):
        type_name = "stdout"
        config_model = SinkConfig

    class Plugin:
        @hookimpl
        def register_sink_types(self, register):
            register(Dup)

    with pytest.raises(PluginError, match=r"'stdout' is registered twice.*'stdout_sink'.*"):
        load_plugins(extra=[Plugin()])


def test_impl_without_spec_is_rejected():
    class Plugin:
        @hookimpl
        def register_widgets(self, register):
            pass

    with pytest.raises(PluginError, match="register_widgets"):
        load_plugins(extra=[Plugin()])


def test_every_hook_is_documented_with_its_arguments():
    readme = (ROOT / "README.md").read_text()
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("register_"):
            continue
        args = ", ".join(inspect.signature(func).parameters)
        assert f"{name}({args})" in readme, f"{name} is not documented in README.md"
        assert ":param register:" in (func.__doc__ or "")


def _env_with(path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_third_party_plugin_is_listed(echo_plugin_path):
    result = run_listend("plugins", env=_env_with(echo_plugin_path))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^echo\s+\(listend-echo 1\.2\.3\)$", result.stdout, re.MULTILINE)
    assert "source: tone" in result.stdout
    assert "sink: memo" in result.stdout


def test_third_party_plugin_works_from_yaml(echo_plugin_path, write_config, tmp_path):
    memo = tmp_path / "memo.jsonl"
    path = write_config(
        f"device: t\nstate_dir: {tmp_path}/state\n"
        "sources:\n  beep:\n    type: tone\n    seconds: 0.5\n"
        f"sinks:\n  notes:\n    type: memo\n    path: {memo}\n"
    )
    env = _env_with(echo_plugin_path)
    assert run_listend("validate", str(path), env=env).returncode == 0
    bad = write_config("sources:\n  beep:\n    type: tone\n    secnds: 1\n", "bad.yaml")
    result = run_listend("validate", str(bad), env=env)
    assert result.returncode == 78
    assert "sources.beep.secnds: unknown key (did you mean 'seconds'?)" in result.stderr
    run = run_listend("run", str(path), env=env, timeout=60)
    assert run.returncode == 0, run.stderr


def test_broken_third_party_plugin_is_named(tmp_path):
    dist = tmp_path / "listend_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: listend-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[listend]\nbroken = listend_broken\n")
    (tmp_path / "listend_broken.py").write_text("raise RuntimeError('boom at import')\n")
    result = run_listend("plugins", env=_env_with(tmp_path))
    assert result.returncode == 78
    assert "plugin 'broken' from package 'listend-broken' failed to load" in result.stderr
    assert "boom at import" in result.stderr
    assert "Traceback" not in result.stderr
