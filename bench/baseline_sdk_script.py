"""The baseline: live transcription to MQTT as the Deepgram SDK's guide shows it.

    python bench/baseline_sdk_script.py --url URL --api-key KEY --audio WAV_OR_DIR --streams N
        --mqtt-port PORT

This is the pattern of the SDK's "live transcription" guide (deepgram-sdk 7.17), followed
literally: the sync ``DeepgramClient``, ``client.listen.v1.connect(...)`` as a context
manager, ``conn.on(EventType.MESSAGE, on_message)``, ``conn.start_listening`` in a
``threading.Thread``, ``send_media`` for each chunk, then ``send_finalize`` (and
``send_close_stream``, as the guide advises). ``on_message`` publishes each final with
paho-mqtt's ``publish`` (QoS 1, like listend's mqtt sink). One thread per stream feeds the
audio at real-time pace from a drift-free clock, as a microphone would deliver it.

What it does not have, and listend does: reconnects, replay, KeepAlive, an outbox. It is the
lightest correct program a user would write from the guide, so the comparison is fair to it.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import wave
from pathlib import Path

import paho.mqtt.client as mqtt
from deepgram import DeepgramClient
from deepgram.core.events import EventType
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Results

CHUNK_SECONDS = 0.1


def stream(client: DeepgramClient, name: str, path: Path, mqttc: mqtt.Client) -> None:
    topic = f"baseline/{name}/transcript"
    wav = wave.open(str(path), "rb")  # read as it plays, like a microphone  # noqa: SIM115
    rate = wav.getframerate()
    frames = int(rate * CHUNK_SECONDS)
    with (
        wav,
        client.listen.v1.connect(
            model="nova-3",
            interim_results=True,
            encoding="linear16",
            sample_rate=rate,
            channels=1,
        ) as conn,
    ):

        def on_message(m: object) -> None:
            if isinstance(m, ListenV1Results) and m.channel and m.channel.alternatives:
                transcript = m.channel.alternatives[0].transcript
                if not transcript:
                    return
                if m.is_final:
                    payload = {
                        "source": name,
                        "request_id": m.metadata.request_id,
                        "start": m.start,
                        "duration": m.duration,
                        "text": transcript,
                        "speech_final": m.speech_final,
                    }
                    mqttc.publish(topic, json.dumps(payload), qos=1)

        conn.on(EventType.MESSAGE, on_message)
        listener = threading.Thread(target=conn.start_listening, daemon=True)
        listener.start()
        next_at = time.monotonic()
        while chunk := wav.readframes(frames):
            conn.send_media(chunk)
            next_at += CHUNK_SECONDS
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.send_finalize()
        conn.send_close_stream()
        listener.join(timeout=10)  # the server answers CloseStream with the last finals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8765")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--audio", required=True, help="a WAV, or a directory: one per stream")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--mqtt-port", type=int, default=1883)
    args = parser.parse_args()

    ws_url = args.url.replace("http://", "ws://")
    client = DeepgramClient(
        api_key=args.api_key,
        environment=DeepgramClientEnvironment(
            base=args.url, production=ws_url, agent=ws_url, agent_rest=args.url
        ),
    )
    mqttc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="baseline")
    mqttc.connect("127.0.0.1", args.mqtt_port)
    mqttc.loop_start()
    audio = Path(args.audio)
    wavs = sorted(audio.glob("*.wav")) if audio.is_dir() else [audio]
    threads = [
        threading.Thread(target=stream, args=(client, f"s{i:03d}", wavs[i % len(wavs)], mqttc))
        for i in range(args.streams)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.5)  # let paho send the last PUBLISHes before disconnecting
    mqttc.disconnect()
    mqttc.loop_stop()


if __name__ == "__main__":
    main()
