"""Start-up RSS by stage, each in a fresh interpreter: what the SDK costs on its own, and
what ``listend run`` holds before its first connection.

    python bench/imports.py  ->  its section of bench/RESULTS.md (and stdout)

Each stage is a fresh ``python -c`` that imports (or does) that much and prints its VmRSS,
three times; the table shows the smallest. ``listend run`` stages load the plugins and the
config as ``cmd_run`` does (without starting the loop), for a stdout-only config and for the
benchmark's file source + mqtt sink; the script's stages import what
``bench/baseline_sdk_script.py`` imports and build its client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from report import write_section

BENCH = Path(__file__).resolve().parent
MARKERS = ("<!-- imports_bench:start -->", "<!-- imports_bench:end -->")
RSS = (
    "\nwith open('/proc/self/status') as f:\n"
    "    print(next(int(l.split()[1]) for l in f if l.startswith('VmRSS:')))\n"
)
SCRIPT_SDK = (
    "import paho.mqtt.client\nfrom deepgram import DeepgramClient\n"
    "from deepgram.listen.v1.types import ListenV1Results\n"
)
LISTEND_SDK = (
    "import websockets.legacy.client, deepgram.listen.v1.socket_client, deepgram.listen.v1.types"
)
RUN = """
import argparse
from listend import cli
cli.build_parser()
from listend.daemon.service.daemon import Daemon
from listend.daemon.stream.preflight import check_sources
from listend.engine.embedded import embedded_engine
path, host, config, positions = cli._load_located(argparse.Namespace(config={config!r}, path=None))
check_sources(config, host, filename=str(path), positions=positions)
"""
CONFIG = """device: bench
state_dir: {state}
deepgram: {{url: "http://127.0.0.1:9", api_key: $env:DG_BENCH_KEY}}
sources:
  s: {{type: file, path: {wav}}}
sinks:
  out: {sink}
"""


def rss_mb(code: str) -> float:
    env = {**os.environ, "DG_BENCH_KEY": "k", "PYTHONWARNINGS": "ignore"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code + RSS], capture_output=True, text=True, check=True, env=env
        ).stdout.split()[-1]
        for _ in range(3)
    ]
    return min(int(kb) for kb in runs) / 1024


def main() -> None:
    wav = BENCH.parent / "config" / "samples" / "hello.wav"
    with tempfile.TemporaryDirectory() as tmp:
        configs: dict[str, str] = {}
        for name, sink in (("stdout", "{type: stdout}"), ("mqtt", "{type: mqtt, port: 1883}")):
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(CONFIG.format(state=tmp, wav=wav, sink=sink))
            configs[name] = str(path)
        stages = [
            ("bare interpreter", "pass"),
            ("the script's imports (SDK client, paho)", SCRIPT_SDK),
            (
                "... and its DeepgramClient",
                SCRIPT_SDK + "DeepgramClient(api_key='k').listen.v1\n",
            ),
            ("the SDK as listend imports it (socket client, types, websockets)", LISTEND_SDK),
            ("`listend run`, stdout sink: plugins + config", RUN.format(config=configs["stdout"])),
            ("`listend run`, mqtt sink: plugins + config", RUN.format(config=configs["mqtt"])),
        ]
        rows = ["| stage | RSS, MB |", "|---|---:|"]
        for label, code in stages:
            rows.append(f"| {label} | {rss_mb(code):.1f} |")
            print(rows[-1], flush=True)
    section = "\n".join(
        [
            "## Start-up memory by stage (bench/imports.py)",
            "",
            (
                "`bench/imports.py`: VmRSS of a fresh interpreter after each stage (the smallest "
                "of three), before any stream (the script imports websockets when it connects; "
                "listend's stages include it); 1-minute load average at the start: "
                f"{os.getloadavg()[0]:.1f}."
            ),
            "",
            *rows,
        ]
    )
    write_section(BENCH / "RESULTS.md", section, MARKERS)


if __name__ == "__main__":
    main()
