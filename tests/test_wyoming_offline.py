"""Assist over Wyoming with no Deepgram key: the embedded offline engine answers."""

from __future__ import annotations

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from listend.engine.embedded import embedded_engine
from tests.support.evaluation import word_error_rate
from tests.support.net import free_port
from tests.support.waiting import async_test
from tests.support.wyoming import transcribe, wyoming_daemon

pytestmark = pytest.mark.xdist_group("local-engine")

SENTENCE = "what is the weather like today"


@pytest.fixture
def command(speech) -> bytes:
    silence = bytes(16000)  # half a second on each side, as a voice command has
    return silence + speech(SENTENCE) + silence


def test_no_key_transcribes_with_the_offline_engine(tmp_path, command, monkeypatch):
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    config = tmp_path / "listend.yaml"
    config.write_text(f"""\
device: test-box
state_dir: {tmp_path / "state"}
wyoming: {{listen: "127.0.0.1:{free_port()}", zeroconf: false}}
""")

    @async_test
    async def run() -> None:
        async with wyoming_daemon(config, local_engine=embedded_engine) as daemon:
            assert daemon.local_engine is not None  # started for the Wyoming server alone
            async with AsyncTcpClient("127.0.0.1", daemon.wyoming.port) as client:
                await client.write_event(Describe().event())
                event = await client.read_event()
            assert event is not None
            [model] = Info.from_event(event).asr[0].models
            assert model.name == "pocketsphinx-en-us"
            assert model.installed
            answer = await transcribe(daemon.wyoming.port, command)
        assert answer.error is None, answer.error
        assert answer.text
        assert word_error_rate([(SENTENCE, answer.text)]) <= 0.5, answer.text

    run()
