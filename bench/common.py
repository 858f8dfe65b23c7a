"""What every benchmark shares: the services, the two clients, and /proc measurements."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
API_KEY = "bench-key"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SERVICE_CORE = "1"  # the server, mosquitto and this harness
CLIENT_CORE = "0"  # a client pinned for the one-core capacity measurement


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing on port {port}")


def pinned(core: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if core is not None else argv


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- /proc ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                if ppid == pid:
                    found.append(int(entry.name))
    return found


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(children(current))
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU time of a process tree: every live thread's on-CPU nanoseconds (schedstat: exact,
    where utime+stime count 10 ms ticks), plus what reaped children and exited threads used
    (cutime/cstime ticks)."""
    total = 0.0
    for each in tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{each}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += sum(int(v) for v in fields[13:15]) / TICKS  # cutime cstime
            for task in Path(f"/proc/{each}/task").iterdir():
                with contextlib.suppress(OSError):
                    total += int((task / "schedstat").read_text().split()[0]) / 1e9
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for each in tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def threads_of(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    return 0


# -- services -------------------------------------------------------------------------------


@dataclass
class Services:
    """The Deepgram-protocol server process and a mosquitto broker, both on the service core."""

    dg_port: int
    mqtt_port: int
    server: subprocess.Popen[str]
    broker: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.dg_port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/bench/stats", timeout=30) as response:
            return dict(json.load(response))

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/bench/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30):
            pass


@contextlib.contextmanager
def services(workdir: Path, *, spoken: Path | None = None) -> Iterator[Services]:
    dg_port, mqtt_port = free_port(), free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\n"
    )
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen(
        pinned(SERVICE_CORE, [mosquitto, "-c", str(conf)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    argv = [PYTHON, str(BENCH / "dgserver.py"), "--port", str(dg_port), "--api-key", API_KEY]
    if spoken is not None:
        argv += ["--spoken", str(spoken)]
    server = subprocess.Popen(
        pinned(SERVICE_CORE, argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        wait_for_port(mqtt_port)
        wait_for_port(dg_port, 60)
        yield Services(dg_port, mqtt_port, server, broker)
    finally:
        stop(server)
        stop(broker)


class Subscriber:
    """Records when each final arrives over MQTT (CLOCK_MONOTONIC, as the server stamps)."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-subscriber")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("listend/+/+/transcript", 1), ("baseline/+/transcript", 1)])
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        with self._lock:
            self.received.append((at, message.payload))

    def take(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            received, self.received = self.received, []
        return [(at, json.loads(payload)) for at, payload in received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the two clients ------------------------------------------------------------------------


def wavs_in(audio: Path) -> list[Path]:
    """A WAV, or a directory of them: stream ``i`` plays the ``i``-th (round robin)."""
    return sorted(audio.glob("*.wav")) if audio.is_dir() else [audio]


def listend_config(
    workdir: Path, svc: Services, audio: Path, streams: int, *, vad: str = "", realtime: bool = True
) -> Path:
    state = workdir / "state"
    shutil.rmtree(state, ignore_errors=True)
    wavs = wavs_in(audio)
    rt = str(realtime).lower()
    sources = "".join(
        f"  s{i:03d}: {{type: file, path: {wavs[i % len(wavs)]}, realtime: {rt}{vad}}}\n"
        for i in range(streams)
    )
    config = workdir / "listend.yaml"
    config.write_text(
        f"""\
device: bench
state_dir: {state}
deepgram:
  url: {svc.url}
  api_key: $env:DG_BENCH_KEY
  options: {{model: nova-3, interim_results: true}}
sources:
{sources}sinks:
  broker: {{type: mqtt, host: 127.0.0.1, port: {svc.mqtt_port}, qos: 1}}
log:
  level: warning
""",
        encoding="utf-8",
    )
    return config


@dataclass
class Client:
    """A running side of the comparison."""

    side: str
    proc: subprocess.Popen[str]
    launched: float
    notify: socket.socket | None = None
    ready_at: float | None = None
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def poll_ready(self) -> None:
        if self.notify is None or self.ready_at is not None:
            return
        with contextlib.suppress(BlockingIOError):
            while True:
                data = self.notify.recv(4096)
                if b"READY=1" in data.split(b"\n"):
                    self.ready_at = time.monotonic()
                    return

    def close(self) -> None:
        stop(self.proc)
        if self.notify is not None:
            self.notify.close()


def start_client(
    side: str,
    workdir: Path,
    svc: Services,
    wav: Path,
    streams: int,
    *,
    core: str | None = None,
    vad: str = "",
    realtime: bool = True,
) -> Client:
    env = {**os.environ, "DG_BENCH_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    notify = None
    log = workdir / f"{side}-{streams}.log"
    if side == "listend":
        config = listend_config(workdir, svc, wav, streams, vad=vad, realtime=realtime)
        argv = [PYTHON, "-m", "listend", "run", str(config)]
        path = str(workdir / "notify.sock")
        Path(path).unlink(missing_ok=True)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(path)
        notify.setblocking(False)
        env["NOTIFY_SOCKET"] = path
    else:
        argv = [
            PYTHON,
            str(BENCH / "baseline_sdk_script.py"),
            "--url",
            svc.url,
            "--api-key",
            API_KEY,
            "--audio",
            str(wav),
            "--streams",
            str(streams),
            "--mqtt-port",
            str(svc.mqtt_port),
        ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            pinned(core, argv), stdout=out, stderr=subprocess.STDOUT, env=env, text=True, cwd=ROOT
        )
    return Client(side, proc, time.monotonic(), notify, log=log)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
