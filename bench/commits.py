"""The outbox's commit scheduling, side by side: a fixed group-commit window against commits
that start at once and batch only while one is being written.

    python bench/commits.py [SECONDS]  ->  its section of bench/RESULTS.md (and stdout)

In one process and one run, for 1, 32 and 128 sources each publishing a final about once a
second (random arrivals), the real router and sink worker with a real SQLite outbox
(``synchronous=FULL``) in a temporary directory, and a sink that confirms at once. Measured
per final, from ``Router.publish``: until the sink's ``deliver`` has it, and until the
end-to-end acknowledgement (every routed outbox committed it); and the commits (fsyncs) per
second. ``fixed`` replays the scheduler main had before issue 20 (every commit waits
COMMIT_DELAY = 50 ms after the first event of its window); ``immediate`` is
:mod:`listend.daemon.delivery.commits`. Both sides alternate in the same run, so a loaded
machine slows both alike: compare the ratios.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import write_section  # noqa: E402

from listend.daemon.delivery.commits import Commits  # noqa: E402
from listend.daemon.delivery.router import Router  # noqa: E402
from listend.daemon.delivery.worker import SinkWorker  # noqa: E402
from listend.daemon.events import AnyEvent  # noqa: E402
from listend.daemon.plugin.sink import Sink, SinkConfig  # noqa: E402
from listend.daemon.plugin.source import PluginContext  # noqa: E402
from tests.support.events import transcript  # noqa: E402

COMMIT_DELAY = 0.05  # the window main used before issue 20


class FixedDelayCommits(Commits):
    """The old scheduling: a commit task that first sleeps COMMIT_DELAY."""

    def soon(self) -> None:
        task = self._task
        if task is not None and task.done():
            self._task = None
        if self._task is None:
            self._task = asyncio.create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(COMMIT_DELAY)
        await self.commit()


class TimingSink(Sink):
    type_name = "timing"

    def __init__(self, state_dir: Path) -> None:
        super().__init__("timing", SinkConfig(type="timing"), PluginContext("dev", state_dir))
        self.delivered_at: dict[str, float] = {}
        self.expected = 0
        self.done = asyncio.Event()

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        now = time.perf_counter()
        for event in events:
            self.delivered_at.setdefault(event.id, now)
        if len(self.delivered_at) >= self.expected:
            self.done.set()


async def one_run(scheduler: str, sources: int, seconds: float, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        sink = TimingSink(Path(tmp))
        worker = SinkWorker(sink)
        if scheduler == "fixed":
            worker.commits = FixedDelayCommits(
                worker.outbox,
                worker.refusal,
                name="timing",
                keep_through=lambda: 0,
                on_dropped=lambda _: None,
            )
        router = Router({f"s{i}": ["timing"] for i in range(sources)}, {"timing": ["final"]})
        router.attach("timing", worker)
        published: dict[str, float] = {}
        acked: dict[str, float] = {}
        all_acked = asyncio.Event()
        fsyncs = 0
        commit = worker.outbox.commit

        async def counting(*args: object, **kwargs: object) -> object:
            nonlocal fsyncs
            fsyncs += 1
            return await commit(*args, **kwargs)  # type: ignore[arg-type]

        worker.outbox.commit = counting  # type: ignore[method-assign]
        rng = random.Random(seed)
        arrivals = sorted(
            (rng.uniform(0, seconds), i) for i in range(sources) for _ in range(int(seconds))
        )
        sink.expected = len(arrivals)
        await worker.open()
        async with asyncio.TaskGroup() as group:
            running = group.create_task(worker.run())
            routing = group.create_task(router.run())
            start = time.perf_counter()
            for seq, (at, i) in enumerate(arrivals):
                delay = start + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                event = transcript(f"s{i}", seq, "words")

                def ack(event_id: str = event.id) -> None:
                    acked[event_id] = time.perf_counter()
                    if len(acked) == len(arrivals):
                        all_acked.set()

                published[event.id] = time.perf_counter()
                await router.publish(event, ack)
            await all_acked.wait()
            await sink.done.wait()
            elapsed = time.perf_counter() - start
            await router.close()
            await routing
            worker.close()
            await running
    deliver = sorted(sink.delivered_at[k] - t for k, t in published.items())
    ack_ms = sorted(acked[k] - t for k, t in published.items())
    return {
        "deliver_p50": 1000 * deliver[len(deliver) // 2],
        "deliver_p99": 1000 * deliver[int(len(deliver) * 0.99)],
        "ack_p50": 1000 * ack_ms[len(ack_ms) // 2],
        "ack_p99": 1000 * ack_ms[int(len(ack_ms) * 0.99)],
        "commits_per_s": fsyncs / elapsed,
    }


MARKERS = ("<!-- commits_bench:start -->", "<!-- commits_bench:end -->")
HEADER = (
    "| sources | publish -> acknowledged p50 / p99, ms: fixed 50 ms | immediate | p99 ratio "
    "| goal | met | publish -> deliver p99, ms: fixed / immediate | commits/s: fixed / "
    "immediate |"
)
ABOUT = (
    "`bench/commits.py {seconds:g}`: the router, a sink worker and its SQLite outbox "
    "(`synchronous=FULL`, in a temporary directory) in one process, each source publishing a "
    "final about once a second; `fixed` is the scheduler before issue 20 (every commit waits 50"
    " ms for company), `immediate` the one now (a commit starts at once; what arrives while it "
    "is written goes in the next). Both run alternately in one process, so the ratios hold on a"
    " loaded machine (1-minute load average {load:.1f} on {cores} cores at the start, Python "
    "{python}). The acknowledgement is what frees a final's audio (the end-to-end guarantee); "
    "delivery never waited for the commit, in either."
)
PRICE = (
    "More commits per second at many sources is the price of not waiting: each is one "
    "fsync; on slower storage (an SD card) commits take longer, queue, and batch by "
    "themselves, so the count falls back towards the fixed window's."
)


async def rows(seconds: float) -> list[str]:
    out = [HEADER, "|---:|---:|---:|---:|---|---|---:|---:|"]
    for sources in (1, 32, 128):
        fixed = await one_run("fixed", sources, seconds, seed=sources)
        now = await one_run("immediate", sources, seconds, seed=sources)
        ratio = now["ack_p99"] / fixed["ack_p99"]
        out.append(
            f"| {sources} | {fixed['ack_p50']:.1f} / {fixed['ack_p99']:.1f} "
            f"| {now['ack_p50']:.1f} / {now['ack_p99']:.1f} | {ratio:.2f}x "
            f"| < 1x, no fixed delay | {'yes' if ratio < 1 else '**no**'} "
            f"| {fixed['deliver_p99']:.2f} / {now['deliver_p99']:.2f} "
            f"| {fixed['commits_per_s']:.0f} / {now['commits_per_s']:.0f} |"
        )
        print(out[-1], flush=True)
    return out


def main(seconds: float) -> None:
    about = ABOUT.format(
        seconds=seconds,
        load=os.getloadavg()[0],
        cores=os.cpu_count(),
        python=platform.python_version(),
    )
    table = asyncio.run(rows(seconds))
    section = "\n".join(
        ["## Commit scheduling (bench/commits.py)", "", about, "", *table, "", PRICE]
    )
    write_section(Path(__file__).resolve().parent / "RESULTS.md", section, MARKERS)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0)
