"""The benchmarks' Deepgram-protocol server: ``listend.testing``'s server in its own process.

    python bench/dgserver.py --port PORT --api-key KEY [--spoken ROOM.wav]

Both sides of every benchmark stream to this one process. Besides ``/v1/listen`` it serves
``GET /bench/stats`` (each connection's open time and bytes received so far; each final's send
time on CLOCK_MONOTONIC, which every process on the machine shares) and ``POST
/bench/reset``. Nothing records audio bytes, so memory stays flat at hundreds of streams.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from listend.dgproto.hooks import ServerHooks
from listend.dgproto.recognizer import StreamParams
from listend.dgproto.records import ConnectionRecord, Credentials
from listend.dgproto.server import DeepgramProtocolServer, serve
from listend.testing import ScriptedRecognizer
from listend.testing.spoken import KnownSpeech


class Timed(ConnectionRecord):
    """A connection's live counters, and the send time of each of its non-empty finals."""

    finals: list[tuple[str, float, float]]  # request id, start, sent at

    def on_sent(self, message: dict[str, Any]) -> None:
        if message.get("type") != "Results" or not message.get("is_final"):
            return
        if message["channel"]["alternatives"][0]["transcript"]:
            self.finals.append((self.request_id, round(message["start"], 3), time.monotonic()))


class Stats(ServerHooks):
    def __init__(self) -> None:
        self.connections: list[ConnectionRecord] = []
        self.finals: list[tuple[str, float, float]] = []

    def open(
        self, _request: web.Request, index: int, request_id: str, params: StreamParams
    ) -> ConnectionRecord:
        record = Timed(index, request_id, params)
        record.finals = self.finals
        self.connections.append(record)
        return record

    async def get(self, _request: web.Request) -> web.Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return web.json_response(
            {
                "now": time.monotonic(),
                "cpu": usage.ru_utime + usage.ru_stime,
                "connections": [
                    {
                        "request_id": c.request_id,
                        "opened_at": c.opened_at,
                        "bytes": c.bytes_received,
                        "closed": c.closed.is_set(),
                        "close_code": c.close_code,
                    }
                    for c in self.connections
                ],
                "finals": self.finals,
            }
        )

    async def reset(self, _request: web.Request) -> web.Response:
        self.connections = []
        self.finals.clear()  # the live connections append to this list
        return web.json_response({"ok": True})


async def main(args: argparse.Namespace) -> None:
    stats = Stats()
    factory: Any = ScriptedRecognizer
    if args.spoken:
        factory = KnownSpeech.load(Path(args.spoken))
    protocol = DeepgramProtocolServer(
        factory,
        credentials=Credentials([args.api_key]),
        hooks=stats,
    )
    protocol.app.router.add_get("/bench/stats", stats.get)
    protocol.app.router.add_post("/bench/reset", stats.reset)
    async with serve(protocol.app, "127.0.0.1", args.port):
        print(f"ready {os.getpid()}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--spoken", help="a SpokenScript saved with .save(): recognize it")
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
