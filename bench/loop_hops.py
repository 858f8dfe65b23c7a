"""Event-loop iterations a final takes from the session's queue to the MQTT socket write.

    python bench/loop_hops.py [--a main] [--b HEAD] [--finals 20]

Each revision (``git archive``, as in ``bench/latency_ab.py``) runs this script's ``--child``
part in its own interpreter: a real ``SinkWorker`` with the ``mqtt`` sink on a real mosquitto,
the ``Router`` and a session's ``EventQueue`` with their tasks, and a callback that counts loop
iterations (it re-schedules itself, so the loop never sleeps). For each final, emitted while
the sink is idle, the count from ``emit`` to paho's first socket send is the number of loop
iterations it waited: each one is a turn behind every other stream's ready callbacks (audio
sends, receives), which is what a final's latency grows with under many streams. Not counted:
the SDK's receive side (websockets' legacy client: the frame reader task, then ``recv``, two
iterations), the same on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import PYTHON, services
from latency_ab import unpack

HERE = Path(__file__).resolve()


class Ticks:
    """Counts loop iterations: a callback that schedules itself again, once per iteration."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._loop.call_soon(self._tick)


async def child(port: int, finals: int, state: Path) -> list[int]:
    from listend.daemon.delivery.router import Router  # noqa: PLC0415 - the tree under test
    from listend.daemon.delivery.worker import SinkWorker  # noqa: PLC0415
    from listend.daemon.plugin.source import AudioFormat, PluginContext  # noqa: PLC0415
    from listend.daemon.stream.capture import EventQueue  # noqa: PLC0415
    from listend.daemon.stream.replay import ReplayBuffer  # noqa: PLC0415
    from listend.plugins.mqtt_sink import MqttSink, MqttSinkConfig  # noqa: PLC0415

    sys.path.append(str(HERE.parents[1]))  # tests.support (the event maker), after the tree
    from tests.support.events import transcript  # noqa: PLC0415

    config = MqttSinkConfig.model_validate({"type": "mqtt", "host": "127.0.0.1", "port": port})
    sink = MqttSink("broker", config, PluginContext("hops", state, ("hall",)))
    worker = SinkWorker(sink)
    router = Router({"hall": ["broker"]}, {"broker": ["final"]})
    router.attach("broker", worker)
    publish: Any = getattr(router, "publisher", router.publish)
    buffer = ReplayBuffer(AudioFormat(16000), max_seconds=10.0)
    queue = EventQueue("hall", buffer, publish, lambda _covered: None)
    tasks = [asyncio.create_task(c) for c in (worker.run(), router.run(), queue.run())]
    while not sink.reachable():  # noqa: ASYNC110 - a bench: polling is fine
        await asyncio.sleep(0.01)
    conn: Any = sink._conn  # noqa: SLF001 - a probe on paho's socket send
    sent_at: list[int] = []
    send = conn._client._sock_send  # noqa: SLF001

    def counting_send(data: bytes) -> int:
        sent_at.append(ticks.count)
        return int(send(data))

    conn._client._sock_send = counting_send  # noqa: SLF001
    ticks = Ticks()
    hops = []
    for seq in range(finals):
        while worker.delivered < seq:  # noqa: ASYNC110 - idle: the last one is confirmed
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        sent_at.clear()
        start = ticks.count
        await queue.emit(transcript("hall", seq, f"final {seq}"))
        while not sent_at:  # noqa: ASYNC110 - every iteration counts: no Event to wait on
            await asyncio.sleep(0)
        hops.append(sent_at[0] - start)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return hops


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", default="main")
    parser.add_argument("--b", default="HEAD")
    parser.add_argument("--finals", type=int, default=20)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # the broker's port
    args = parser.parse_args()
    if args.child is not None:
        with tempfile.TemporaryDirectory() as state:
            print(json.dumps(asyncio.run(child(args.child, args.finals, Path(state)))))
        return
    workdir = Path(tempfile.mkdtemp(prefix="hops-"))
    with tempfile.TemporaryDirectory() as tmp, services(workdir) as svc:
        for side, rev in (("a", args.a), ("b", args.b)):
            tree = unpack(rev, Path(tmp) / side)
            env = {**os.environ, "PYTHONPATH": str(tree)}  # sys.path[0] is bench/: no listend
            argv = [PYTHON, str(HERE), "--child", str(svc.mqtt_port), "--finals", str(args.finals)]
            out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
            hops = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{side} = {rev}: loop iterations emit -> socket write: median "
                f"{statistics.median(hops):g}, min {min(hops)}, max {max(hops)}, {len(hops)} finals"
            )


if __name__ == "__main__":
    main()
