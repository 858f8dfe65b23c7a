"""``python -m listend.testing``: run the test server standalone, or write a scripted WAV."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from listend.testing.scripted import Script
from listend.testing.server import DEFAULT_API_KEY, DeepgramTestServer


async def _serve(args: argparse.Namespace) -> None:
    keys = [] if args.open else (args.api_key or [DEFAULT_API_KEY])
    server = DeepgramTestServer(
        api_keys=keys,
        access_tokens=args.access_token or [],
        idle_timeout=args.idle_timeout,
        host=args.host,
        port=args.port,
    )
    async with server:
        auth = "no auth" if args.open else f"api keys: {', '.join(keys)}"
        print(f"Deepgram test server on {server.url} ({auth})", flush=True)  # noqa: T201
        await asyncio.Event().wait()


def _script(args: argparse.Namespace) -> None:
    script = Script(sample_rate=args.sample_rate, channels=args.channels)
    for text in args.say or []:
        script.say(text)
    if args.seconds:
        script.generate(args.seconds, seed=args.seed)
    script.write_wav(Path(args.output))
    print(f"{args.output}: {script.duration:.2f}s, {len(script.words)} words")  # noqa: T201


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m listend.testing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the Deepgram-protocol test server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--api-key", action="append", help="accepted key (repeatable)")
    serve.add_argument("--access-token", action="append", help="accepted Bearer token")
    serve.add_argument("--open", action="store_true", help="accept any credentials")
    serve.add_argument("--idle-timeout", type=float, default=10.0)
    script = commands.add_parser("script", help="write a WAV of scripted speech")
    script.add_argument("output", help="WAV file to write")
    script.add_argument("--say", action="append", help="one utterance (repeatable)")
    script.add_argument("--seconds", type=float, help="append generated utterances")
    script.add_argument("--seed", type=int, default=0)
    script.add_argument("--sample-rate", type=int, default=16000)
    script.add_argument("--channels", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "script":
        _script(args)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
