"""Phrase triggers end to end: the real daemon, real mosquitto, the Deepgram-protocol test server
with interim results (scripted speech whose interims mishear a word, as a live engine does)."""

from __future__ import annotations

import functools
import os
import uuid

from listend.testing import Script, ScriptedRecognizer, running_server
from tests.support.cli import DaemonProcess
from tests.support.mqtt import Received, Subscriber
from tests.support.sessions import config_text

DEADLINE = 60.0


def phrase_config(tmp_path, dg_url: str, device: str, port: int):
    script = Script()
    script.say("please help me")  # fires on the interim, the final confirms it
    script.say("kelp is green")  # the interim hears "help": the final retracts it
    script.say("help help")  # twice in one utterance: fires once
    wav = script.write_wav(tmp_path / "speech.wav")
    sink = (
        "  broker:\n"
        "    type: mqtt\n"
        "    host: 127.0.0.1\n"
        f"    port: {port}\n"
        "    receive: [final, phrase]\n"
        "    homeassistant: {}\n"
    )
    text = config_text(dg_url, wav, sink=sink, device=device)
    text = text.replace(
        "options: {model: nova-3}",
        "options: {model: nova-3, interim_results: true, endpointing: 300}",
    )
    text += "triggers:\n  help:\n    phrases: [Help]\n"
    path = tmp_path / "listend.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_trigger_fires_once_per_utterance_from_interims_and_the_final_settles_it(
    mosquitto_port, tmp_path
):
    device = f"d{uuid.uuid4().hex[:10]}"
    base = f"listend/{device}/hall/transcript"
    sub = Subscriber(mosquitto_port, [f"listend/{device}/#", "homeassistant/device/#"])
    factory = functools.partial(ScriptedRecognizer, misheard={"kelp": "help"})
    try:
        with running_server(recognizer_factory=factory) as dg:
            config = phrase_config(tmp_path, dg.url, device, mosquitto_port)
            daemon = DaemonProcess(
                config, tmp_path / "d.log", env={**os.environ, "DG_TEST_KEY": dg.api_key}
            )
            try:
                sub.wait_for(
                    lambda m: sum(x.topic == f"{base}/phrase/help" for x in m) >= 6,
                    DEADLINE,
                    "three detections, each settled",
                )
                sub.wait_for(lambda m: sum(x.topic == base for x in m) >= 3, DEADLINE, "3 finals")
            finally:
                code = daemon.terminate()
            assert dg.connections[0].params.keyterm == ("Help",)  # boosted for nova-3
        assert code == 0, daemon.log()
        phrases = [m.json() for m in sub.on(f"{base}/phrase/help")]
        assert [p["status"] for p in phrases] == [
            "detected",
            "confirmed",
            "detected",
            "retracted",
            "detected",
            "confirmed",
        ]
        finals = [m.json() for m in sub.on(base)]
        assert [f["text"] for f in finals] == ["please help me", "kelp is green", "help help"]
        detected, settled = phrases[0::2], phrases[1::2]
        for fired, outcome, final in zip(detected, settled, finals, strict=True):
            assert "final_id" not in fired  # from an interim: before the final existed
            assert fired["engine"] == "deepgram"
            assert fired["trigger"] == "help"
            assert outcome["detection"] == fired["id"]
            assert outcome["final_id"] == final["id"]
        assert detected[0]["text"] == "help"
        assert settled[0]["start"] <= settled[0]["end"] <= finals[0]["end"]
        assert all(
            index(sub.messages, fired["id"]) < index(sub.messages, final["id"])
            for fired, final in zip(detected, finals, strict=True)
        ), "each detection reached the subscriber before its final"
        # Home Assistant's event entity: detections only, on the source's phrase topic
        assert [m.json()["id"] for m in sub.on(f"{base}/phrase")] == [p["id"] for p in detected]
        config = sub.on(f"homeassistant/device/listend_{device}/config")[-1].json()
        entity = config["components"]["hall_phrase"]
        assert entity["platform"] == "event"
        assert entity["event_types"] == ["help"]
        assert entity["state_topic"] == f"{base}/phrase"
    finally:
        sub.close()


def index(messages: list[Received], event_id: str) -> int:
    return next(
        i
        for i, m in enumerate(messages)
        if m.payload.startswith(b"{") and m.json().get("id") == event_id
    )
