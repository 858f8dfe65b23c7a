"""The microphone source through the real PyAudio -> PortAudio -> ALSA path, no sound card.

Each test writes its own ``$HOME/.asoundrc`` defining ``type file`` capture devices fed from
FIFOs (tests/support/fake_mic.py) and runs the sources in a subprocess
(tests/support/source_harness.py), so PortAudio enumerates exactly that test's devices and xdist
workers never share one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from pathlib import Path

import pytest

from listend.plugins.microphone import MicrophoneConfig, MicrophoneStats, _CaptureThread
from listend.plugins.portaudio import AudioDeviceError, InputDevice, find_input_device
from tests.support.cli import run_listend
from tests.support.fake_mic import FifoMic
from tests.support.source_harness import HarnessProcess

DECOY = 'pcm.decoy {\n    type file\n    slave.pcm "null"\n    file "/dev/null"\n    infile "/dev/zero"\n    format "raw"\n}\n'  # noqa: E501


def alsa_env(tmp_path: Path, *mics: FifoMic, decoy: bool = True) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    text = (DECOY if decoy else "") + "".join(mic.asoundrc() for mic in mics)
    (home / ".asoundrc").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "XDG_CONFIG"))}
    return {**env, "HOME": str(home)}


def harness(tmp_path: Path, env: dict[str, str], sources_yaml: str) -> HarnessProcess:
    config = tmp_path / "listend.yaml"
    config.write_text(f"device: t\nstate_dir: {tmp_path}/state\nsources:\n{sources_yaml}")
    out = tmp_path / "out"
    out.mkdir()
    return HarnessProcess(config, out, env)


def assert_clean_exit(run: HarnessProcess, status: int) -> None:
    assert status == 0, run.log
    assert "Traceback" not in run.log
    assert "ALSA lib" not in run.log, "ALSA's stderr noise reached the log"
    assert "jack server" not in run.log.lower()


def test_devices_lists_the_test_device(tmp_path):
    mic = FifoMic(tmp_path, "kitchenmic")
    env = alsa_env(tmp_path, mic)
    mic.plug()
    try:
        table = run_listend("devices", env=env, timeout=60)
        as_json = run_listend("devices", "--json", env=env, timeout=60)
    finally:
        mic.close()
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert re.fullmatch(r"index\s+name\s+host API\s+channels\s+default rate", lines[0])
    assert [
        line for line in lines if re.fullmatch(r"[* ]\d+\s+kitchenmic\s+ALSA\s+\d+\s+\d+", line)
    ]
    assert table.stderr == "", "ALSA/JACK noise on stderr"
    devices = {d["name"]: d for d in json.loads(as_json.stdout)}
    assert devices["kitchenmic"]["host_api"] == "ALSA"
    assert devices["kitchenmic"]["max_input_channels"] >= 1
    assert devices["kitchenmic"]["default_sample_rate"] > 0
    assert "decoy" in devices


def test_microphone_delivers_the_fed_bytes_in_order(tmp_path):
    mic = FifoMic(tmp_path, "kitchenmic")
    env = alsa_env(tmp_path, mic)
    payload = random.Random(5).randbytes(48000)  # 1.5 s of 16 kHz mono, fits in the FIFO
    mic.plug(initial=payload)
    run = harness(tmp_path, env, "  mic:\n    type: microphone\n    device: Kitchen\n")
    try:
        run.wait_for_log(r"source mic: capturing from \[\d+\] 'kitchenmic' \(ALSA")
        data = run.wait_for_output("mic", lambda d: len(d) >= len(payload))
    finally:
        status = run.stop(then=mic.close)
    assert data[: len(payload)] == payload
    assert_clean_exit(run, status)


def test_missing_device_is_named_with_the_existing_ones_and_picked_up_when_plugged(tmp_path):
    mic = FifoMic(tmp_path, "kitchenmic")
    env = alsa_env(tmp_path, mic)
    payload = random.Random(7).randbytes(32000)
    yaml = "  mic:\n    type: microphone\n    device: kitchen\n    max_retry_delay: 0.5\n"
    run = harness(tmp_path, env, yaml)
    try:
        line = run.wait_for_log(r"WARNING .*source mic: ")
        assert "no input device name contains 'kitchen'" in line
        assert re.search(r"input devices: \[\d+\] 'decoy' \(ALSA, \d+ ch, \d+ Hz\)", line)
        assert "listend devices" in line
        mic.plug(initial=payload)
        run.wait_for_log(r"source mic: resumed after [\d.]+ s \(\d+ failed attempts\)")
        data = run.wait_for_output("mic", lambda d: len(d) >= len(payload))
    finally:
        status = run.stop(then=mic.close)
    assert data[: len(payload)] == payload
    assert len(re.findall(r"WARNING .*source mic:", run.log_before_stop)) == 1, "log once"
    assert_clean_exit(run, status)


@pytest.mark.slow
def test_device_lost_mid_stream_recovers_and_other_sources_continue(tmp_path):
    lost = FifoMic(tmp_path, "usbmic", tap=True)
    steady = FifoMic(tmp_path, "boardmic")
    env = alsa_env(tmp_path, lost, steady)
    before, after = b"\x21" * 1600, b"\x42" * 1600
    lost.plug()
    steady.plug()
    lost.start_feeding(before)
    steady.start_feeding(b"\x11" * 1600)
    yaml = (
        "  usb:\n    type: microphone\n    device: usbmic\n    max_retry_delay: 0.5\n"
        "  board:\n    type: microphone\n    device: boardmic\n"
    )
    run = harness(tmp_path, env, yaml)
    try:
        run.wait_for_log(r"source usb: capturing from")
        run.wait_for_log(r"source board: capturing from")
        run.wait_for_output("usb", lambda d: d.count(before) >= 5)

        lost.unplug()  # USB microphone pulled out: its next read fails
        run.wait_for_log(r"WARNING .*source usb: reading from \[\d+\] 'usbmic' .* failed")
        lost.drop_writer()
        board_then = len(run.output("board"))
        usb_then = len(run.output("usb"))
        # The other microphone keeps streaming while this one is gone.
        run.wait_for_output("board", lambda d: len(d) >= board_then + 64000)
        assert "source usb: resumed" not in run.log

        lost.plug()  # plugged back in
        lost.start_feeding(after)
        run.wait_for_log(r"source usb: resumed after")
        run.wait_for_output("usb", lambda d: after in d[usb_then:])
    finally:
        status = run.stop(then=lambda: (lost.close(), steady.close()))
    warnings = re.findall(r"WARNING .*", run.log_before_stop)
    assert len([w for w in warnings if "source usb:" in w]) == 1, "log once per outage"
    assert not [w for w in warnings if "source board:" in w], warnings
    assert "AlsaOpen" not in run.log, "PortAudio's lines for each failed re-open reached stderr"
    assert_clean_exit(run, status)


def _devices() -> list[InputDevice]:
    return [
        InputDevice(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", "ALSA", 2, 44100.0),
        InputDevice(3, "USB PnP Sound Device: Audio (hw:1,0)", "ALSA", 1, 48000.0),
        InputDevice(4, "default", "ALSA", 64, 44100.0, is_default=True),
        InputDevice(5, "usb", "ALSA", 1, 48000.0),
    ]


def test_device_lookup_by_index_name_substring_and_default():
    devices = _devices()
    assert find_input_device(devices, 3).index == 3
    assert find_input_device(devices, "usb pnp").index == 3
    assert find_input_device(devices, "usb").index == 5, "an exact name wins over substrings"
    assert find_input_device(devices, None).name == "default"


def test_device_lookup_errors_list_what_exists():
    with pytest.raises(
        AudioDeviceError, match=r"no input device name contains 'blue'.*\[3\] 'USB PnP"
    ):
        find_input_device(_devices(), "blue")
    with pytest.raises(AudioDeviceError, match="no input device with index 9"):
        find_input_device(_devices(), 9)
    with pytest.raises(AudioDeviceError, match=r"'hw:' matches 2 input devices.*longer part"):
        find_input_device(_devices(), "hw:")
    with pytest.raises(AudioDeviceError, match="no default input device; input devices: none"):
        find_input_device([], None)


def test_audio_nobody_consumes_drops_the_oldest_chunks(caplog):
    config = MicrophoneConfig.model_validate(
        {"type": "microphone", "sample_rate": 8000, "frames_per_buffer": 65536}
    )
    stats = MicrophoneStats()

    async def deliver() -> list[object]:
        capture = _CaptureThread("source m", config, stats)  # not started: no device needed
        for i in range(5):
            capture._deliver(bytes([i]))
        return [capture.queue.get_nowait() for _ in range(capture.queue.qsize())]

    assert asyncio.run(deliver()) == [b"\x03", b"\x04"]
    assert stats.dropped_chunks == 3
    assert "dropped the oldest chunk (1 so far)" in caplog.text


def test_device_option_takes_a_name_or_an_index():
    def device(value: object) -> object:
        return MicrophoneConfig.model_validate({"type": "microphone", "device": value}).device

    assert device(3) == 3
    assert device("USB PnP") == "USB PnP"
    assert device(None) is None
