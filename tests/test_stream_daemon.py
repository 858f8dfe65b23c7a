"""The daemon end to end: `listend run` against listend.testing, signals and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from listend.api import hookimpl
from listend.daemon.config.loader import load_config
from listend.daemon.events import AnyEvent
from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.sink import Sink, SinkConfig
from listend.daemon.service.daemon import Daemon
from listend.testing import DeepgramTestServer, Script, running_server
from tests.support.cli import listend_cmd
from tests.support.paths import ROOT
from tests.support.sessions import config_text
from tests.support.waiting import wait_until

BPS = 32000


def start_listend(config: Path, key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DG_TEST_KEY": key}
    return subprocess.Popen(
        listend_cmd("--log-level", "info", "run", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def finals_of(stdout: str) -> list[dict]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("type") == "transcript" and e["is_final"]]


def test_sigterm_mid_utterance_flushes_and_exits_0(tmp_path):
    script = Script(char_ms=90).say("these final words must reach the sink", then_silence=0)
    wav = script.write_wav(tmp_path / "speech.wav")
    config = tmp_path / "listend.yaml"
    with running_server() as dg:
        config.write_text(config_text(dg.url, wav, extra_source="    realtime: true\n"))
        proc = start_listend(config, dg.api_key)
        try:

            def heard() -> bool:
                assert proc.poll() is None, proc.communicate()
                return bool(dg.connections) and dg.connections[0].bytes_received >= int(1.5 * BPS)

            wait_until(heard, 60, "1.5 s of audio at the server")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        conn = dg.connections[0]
    assert proc.returncode == 0, err
    assert conn.control_types == ["Finalize", "CloseStream"]
    assert conn.close_code == 1000
    heard = conn.bytes_received / BPS
    complete = [s.word for s in script.spans if s.end <= heard]
    assert len(complete) >= 2
    words = [w["word"] for e in finals_of(out) for w in e["words"]]
    assert words[: len(complete)] == complete
    assert len(words) <= len(complete) + 1  # and the word the stop cut, as far as it was heard
    assert finals_of(out)[-1]["from_finalize"] is True


def test_wrong_api_key_one_clear_line_and_exit_77(tmp_path):
    wav = Script().say("unheard").write_wav(tmp_path / "speech.wav")
    config = tmp_path / "listend.yaml"
    with running_server() as dg:
        config.write_text(config_text(dg.url, wav))
        proc = start_listend(config, "not-the-key")
        _out, err = proc.communicate(timeout=60)
        exited = time.monotonic()
        refusals = list(dg.refusals)
    assert proc.returncode == 77, err
    assert len(refusals) == 1  # no retry loop
    assert exited - refusals[0].at < 2.0
    # (the `ready:` status line, when it comes after the refusal, names it as what is not up)
    status = [line for line in err.splitlines() if "daemon: ready: " in line]
    assert all("stream hall: not connected (Deepgram refused" in line for line in status), err
    lines = [line for line in err.splitlines() if "INVALID_AUTH" in line and line not in status]
    assert len(lines) == 1, err
    assert lines[0].startswith("listend: Deepgram refused the credentials for source hall")
    assert refusals[0].request_id in lines[0]
    assert "Traceback" not in err


def test_stream_setting_contradicting_the_source_is_a_config_error(tmp_path):
    wav = Script(sample_rate=8000).say("eight kilohertz").write_wav(tmp_path / "speech.wav")
    config = tmp_path / "listend.yaml"
    with running_server() as dg:
        extra = "    stream: {sample_rate: 16000, encoding: linear16}\n"
        config.write_text(config_text(dg.url, wav, extra_source=extra))
        proc = start_listend(config, dg.api_key)
        _out, err = proc.communicate(timeout=60)
        connections = len(dg.connections) + len(dg.refusals)
    assert proc.returncode == 78, err
    assert (
        "sources.hall.stream.sample_rate: stream.sample_rate is 16000 but the source delivers 8000"
        in err
    )
    assert connections == 0  # refused before connecting


class SluggishConfig(SinkConfig):
    pass


class SluggishSink(Sink):
    """Blocks its first delivery for 10 s, then keeps what it gets."""

    type_name = "sluggish"
    config_model = SluggishConfig
    max_batch = 100
    received: ClassVar[list[AnyEvent]] = []

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        if not SluggishSink.received:
            await asyncio.sleep(10)
        SluggishSink.received.extend(events)


class SluggishPlugin:
    @hookimpl
    def register_sink_types(self, register):
        register(SluggishSink)


@pytest.mark.slow
def test_a_sink_blocking_ten_seconds_does_not_disconnect_the_stream(tmp_path):
    script = Script().generate(12, seed=5)
    wav = script.write_wav(tmp_path / "speech.wav")
    host = load_plugins(extra=[SluggishPlugin()])
    SluggishSink.received = []

    async def main():
        async with DeepgramTestServer() as dg:
            text = config_text(
                dg.url,
                wav,
                extra_source="    realtime: true\n",
                sink="  slow: {type: sluggish, receive: [final, interim]}",
            )
            path = tmp_path / "listend.yaml"
            path.write_text(text)
            os.environ["DG_TEST_KEY"] = dg.api_key
            daemon = Daemon(load_config(path, host), host)
            async with asyncio.timeout(90):
                code = await daemon.run()
            return code, dg.connections

    try:
        code, connections = asyncio.run(main())
    finally:
        os.environ.pop("DG_TEST_KEY", None)
    assert code == 0
    assert [c.close_code for c in connections] == [1000]
    words = [w.word for e in SluggishSink.received if e.kind == "final" for w in e.words]
    assert words == script.words
