from __future__ import annotations

import inspect
import os
import re
import shutil
from pathlib import Path

import pytest

from listend.api import hookimpl
from listend.daemon.errors import PluginError
from listend.daemon.plugin import hookspecs
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.sink import Sink, SinkConfig
from tests.support.cli import run_listend
from tests.support.paths import FIXTURES, ROOT

#: A config needs a source; tests about plugins add this one, which starts nothing.
IDLE_SOURCE = "sources: {idle: {type: file, path: config/samples/hello.wav, enabled: false}}\n"


def test_builtins_come_through_entry_points():
    host = load_plugins()
    assert "file" in host.sources.names()
    assert "stdout" in host.sinks.names()
    info = {i.name: i for i in host.infos}
    assert info["file_source"].package == "listend"


def test_blocked_entry_point_is_skipped():
    host = load_plugins(blocked=["stdout_sink"])
    assert "stdout" not in host.sinks.names()


def _sink_plugin(type_name: str, *, then_raise: Exception | None = None) -> object:
    """A plugin object registering one sink type (and then raising, if asked)."""
    attrs = {"type_name": type_name, "config_model": SinkConfig}
    cls = type(f"{type_name.title()}Sink", (Sink,), attrs)

    class Plugin:
        @hookimpl
        def register_sink_types(self, register):
            register(cls)
            if then_raise is not None:
                raise then_raise

    return Plugin()


def test_duplicate_type_names_both_plugins():
    with pytest.raises(PluginError, match=r"'stdout' is registered twice.*'stdout_sink'.*"):
        load_plugins(extra=[_sink_plugin("stdout")])


def test_impl_without_spec_is_rejected():
    class Plugin:
        @hookimpl
        def register_widgets(self, register):
            pass

    with pytest.raises(PluginError, match="register_widgets"):
        load_plugins(extra=[Plugin()])


def test_every_hook_is_documented_with_its_arguments():
    readme = (ROOT / "docs" / "plugins.md").read_text()
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("register_"):
            continue
        args = ", ".join(inspect.signature(func).parameters)
        assert f"{name}({args})" in readme, f"{name} is not documented in docs/plugins.md"
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
    assert result.returncode == 0, result.stderr  # listed as broken, the others still load
    assert "plugin 'broken' from package 'listend-broken' failed to load" in result.stderr
    assert "boom at import" in result.stderr
    assert "Traceback" not in result.stderr


# -- disabling plugins, and a broken third-party plugin ----------------------------------------


@pytest.fixture(scope="module")
def broken_plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/listend-broken (a dist-info with two broken entry points) in a temp dir."""
    target = tmp_path_factory.mktemp("broken-plugin")
    shutil.copytree(FIXTURES / "listend-broken", target, dirs_exist_ok=True)
    return target


IMPORT_FAILS = (
    "plugin 'broken_import' from package 'listend-broken' failed to load: "
    "ModuleNotFoundError: No module named 'listend_broken_missing_dependency'"
)
REGISTER_FAILS = (
    "plugin 'broken_register' from package 'listend-broken' failed to load: "
    "while registering its types: RuntimeError: chirp hardware not found"
)


def test_broken_plugin_does_not_break_help_plugins_or_schema(broken_plugin_path):
    env = _env_with(broken_plugin_path)
    assert run_listend("--help", env=env).returncode == 0
    assert run_listend("schema", env=env).returncode == 0
    result = run_listend("plugins", env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count(IMPORT_FAILS) == 1  # reported once, by name and package
    assert result.stderr.count(REGISTER_FAILS) == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("broken_import  (listend-broken 0.1)  BROKEN: ModuleNotFoundError")
        for line in lines
    )
    assert any("broken_register" in line and "chirp hardware not found" in line for line in lines)
    assert "    sink: stdout" in lines  # the others are all there
    assert "source: chirp" not in result.stdout  # nothing half-registered


def test_config_not_using_a_broken_plugin_still_validates(broken_plugin_path, write_config):
    path = write_config("device: t\nsinks:\n  out:\n    type: stdout\n" + IDLE_SOURCE)
    result = run_listend("validate", str(path), env=_env_with(broken_plugin_path))
    assert result.returncode == 0, result.stderr
    assert IMPORT_FAILS in result.stderr


def test_config_using_a_broken_plugins_type_says_so(broken_plugin_path, write_config):
    path = write_config("sources:\n  a:\n    type: chirp\n  b:\n    type: nothing\n")
    result = run_listend("validate", str(path), env=_env_with(broken_plugin_path))
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert f"{path}:3:11: sources.a.type: unknown source type 'chirp'; installed: " in result.stderr
    assert (
        "it is provided by plugin 'broken_register' from package 'listend-broken', which "
        "failed to load: while registering its types: RuntimeError: chirp hardware not found"
    ) in result.stderr
    (nothing,) = [line for line in result.stderr.splitlines() if "'nothing'" in line]
    assert "plugins not loaded that may provide it: 'broken_import'" in nothing


def test_disabled_by_environment_variable(broken_plugin_path, echo_plugin_path, write_config):
    env = _env_with(f"{broken_plugin_path}{os.pathsep}{echo_plugin_path}")
    env["LISTEND_DISABLED_PLUGINS"] = "broken_import, broken_register,stdout_sink,,echo"
    result = run_listend("plugins", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # a disabled plugin is not even imported
    for name in ("broken_import", "broken_register", "stdout_sink", "echo"):
        assert f"{name}  (disabled)" in result.stdout.splitlines()
    assert "sink: stdout" not in result.stdout
    assert "sink: memo" not in result.stdout
    assert "    sink: mqtt" in result.stdout
    path = write_config("sinks:\n  out:\n    type: stdout\n")
    result = run_listend("validate", str(path), env=env)
    assert result.returncode == 78
    assert "'stdout_sink' (disabled)" in result.stderr


def test_disabled_by_config_key(broken_plugin_path, write_config):
    path = write_config(
        "plugins:\n  disabled: [broken_import, broken_register, mqtt_sink, typo_sink]\n"
        "sinks:\n  out:\n    type: stdout\n  bus:\n    type: mqtt\n    host: localhost\n"
        + IDLE_SOURCE
    )
    result = run_listend("validate", str(path), env=_env_with(broken_plugin_path))
    assert result.returncode == 78
    assert "failed to load" not in result.stderr  # disabled before it is imported
    assert "plugin 'typo_sink' is disabled but no installed plugin has that name" in result.stderr
    assert f"{path}:7:11: sinks.bus.type: unknown sink type 'mqtt'" in result.stderr
    assert "'mqtt_sink' (disabled)" in result.stderr
    fixed = path.read_text().replace("  bus:\n    type: mqtt\n    host: localhost\n", "")
    result = run_listend("validate", str(write_config(fixed)), env=_env_with(broken_plugin_path))
    assert result.returncode == 0, result.stderr


def test_malformed_disabled_key_is_reported_before_plugins_load(write_config):
    path = write_config("device: t\nplugins:\n  disabled: stdout_sink\nbogus: 1\n")
    result = run_listend("validate", str(path))
    assert result.returncode == 78
    assert "Traceback" not in result.stderr
    assert "read before loading plugins" in result.stderr
    assert f"{path}:3:13: plugins.disabled: Input should be a valid list" in result.stderr
    assert "bogus" not in result.stderr  # the rest is checked once plugins are known


def test_hook_raising_while_registering_skips_only_that_plugin(caplog):
    host = load_plugins(extra=[_sink_plugin("flaky", then_raise=KeyError("no config dir"))])
    assert "flaky" not in host.sinks.names()
    assert "stdout" in host.sinks.names()
    (broken,) = host.broken
    assert broken.sink_types == ("flaky",)
    assert "KeyError: 'no config dir'" in broken.reason
    assert "it is provided by plugin" in host.why_unavailable("sink", "flaky")
    assert [r.levelname for r in caplog.records if "failed to load" in r.message] == ["WARNING"]
