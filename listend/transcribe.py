"""``listend transcribe PATH|URL``: one-shot transcription over Deepgram's REST API.

Talks to Deepgram (``DEEPGRAM_API_KEY``), a self-hosted server (``--url``) or, with ``--local``
or no key, the local engine started in-process. Files are streamed (never read whole); a
progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import stat
import sys
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from listend.daemon.config.urls import redact_url, reject_userinfo
from listend.daemon.errors import AuthError, ListendError
from listend.progress import Progress
from listend.subtitles import to_srt, to_text, to_vtt

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
TIMEOUT = 3600.0  # a long file on the local engine takes a while; Deepgram answers sooner
FLAGS = {  # Deepgram's boolean options, with what `--help` says about them
    "punctuate": "add punctuation and capitalisation",
    "smart_format": "format dates, numbers, currency, ... for reading (implies punctuate)",
    "diarize": "tell speakers apart (speaker numbers in json)",
    "utterances": "split into utterances (on by default for srt/vtt)",
    "paragraphs": "split into paragraphs",
    "multichannel": "transcribe each channel on its own",
    "numerals": "write numbers as digits",
    "profanity_filter": "mask profanity",
    "filler_words": "keep 'uh', 'um', ...",
    "dictation": "spoken punctuation commands ('comma', 'period') become punctuation",
    "measurements": "write measurements as abbreviations",
    "detect_language": "detect the spoken language",
    "detect_entities": "detect names, places, ... (json)",
    "sentiment": "sentiment analysis (json)",
    "topics": "topic detection (json)",
    "intents": "intent recognition (json)",
}
LISTS = {  # Deepgram's repeatable options
    "keywords": "boost a word, WORD or WORD:INTENSIFIER (older models)",
    "keyterm": "boost a term (nova-3)",
    "search": "search for a term; hits in json",
    "replace": "replace a term, FIND:REPLACE",
    "tag": "a tag for Deepgram's usage reports",
    "extra": "extra KEY:VALUE echoed in the response metadata",
    "custom_topic": "a topic to detect (with --topics)",
    "custom_intent": "an intent to detect (with --intents)",
}
FORMATTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": to_text,
    "json": lambda result: json.dumps(result, indent=2) + "\n",
    "srt": to_srt,
    "vtt": to_vtt,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="PATH|URL", help="an audio/video file, or an http(s) URL")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--local", action="store_true", help="use the offline engine (default with no API key)"
    )
    where.add_argument("--url", help="Deepgram-compatible base URL (self-hosted)")
    parser.add_argument("--model", help="e.g. nova-3 (Deepgram's default when omitted)")
    parser.add_argument(
        "--engine",
        choices=["auto", "pocketsphinx", "whisper", "wyoming"],
        default="auto",
        help="with --local: auto (Whisper when listend[whisper] is installed), or one of them",
    )
    parser.add_argument(
        "--engine-model",
        type=Path,
        metavar="DIR",
        help="with --local: a CTranslate2 Whisper model directory (default: bundled tiny.en)",
    )
    parser.add_argument(
        "--wyoming", metavar="tcp://HOST:PORT", help="with --engine wyoming: the server"
    )
    parser.add_argument("--language", help="e.g. en, en-US, de")
    deepgram = parser.add_argument_group("Deepgram options (the offline engine ignores them)")
    for name, text in FLAGS.items():
        deepgram.add_argument(
            f"--{name.replace('_', '-')}", action="store_true", default=None, help=text
        )
    for name, text in LISTS.items():
        deepgram.add_argument(
            f"--{name.replace('_', '-')}",
            action="append",
            metavar="VALUE",
            help=text + "; repeatable",
        )
    deepgram.add_argument("--summarize", nargs="?", const="v2", help="add a summary (v2)")
    deepgram.add_argument("--redact", help="redact pci, pii, numbers, ...")
    deepgram.add_argument(
        "--utt-split", type=float, metavar="SECONDS", help="pause that ends an utterance"
    )
    deepgram.add_argument("--model-version", metavar="VERSION", help="Deepgram model version")
    raw = parser.add_argument_group("raw audio (no container)")
    raw.add_argument("--encoding", help="linear16, mulaw, ...")
    raw.add_argument("--sample-rate", type=int, metavar="HZ", help="samples per second")
    raw.add_argument("--channels", type=int, metavar="N", help="interleaved channels")
    parser.add_argument("--callback", metavar="URL", help="print the request id; result goes there")
    parser.add_argument(
        "--callback-method", choices=["POST", "PUT"], type=str.upper, help="for --callback"
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATTERS),
        default="text",
        help="text (paragraphs), json (Deepgram's response), srt or vtt captions (default: text)",
    )
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``transcribe_file``/``transcribe_url``."""
    options: dict[str, Any] = {}
    for name in (*FLAGS, *LISTS, "model", "language", "redact", "utt_split", "encoding"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if args.summarize is not None:
        options["summarize"] = args.summarize
    if args.model_version is not None:
        options["version"] = args.model_version
    if args.callback is not None:
        options["callback"] = args.callback
        if args.callback_method is not None:
            options["callback_method"] = args.callback_method
    elif args.callback_method is not None:
        raise ListendError("--callback-method needs --callback")
    if args.format in {"srt", "vtt"} and "utterances" not in options:
        options["utterances"] = True  # cues follow utterance boundaries
    return options


def run(args: argparse.Namespace) -> int:
    is_url = args.source.startswith(("http://", "https://"))
    if args.url is not None:
        try:
            reject_userinfo(args.url, "DEEPGRAM_API_KEY")
        except ValueError as exc:
            raise ListendError(f"--url: {exc}") from None
    size = None if is_url else _file_size(Path(args.source))
    return asyncio.run(_run(args, size))


def _file_size(path: Path) -> int:
    """The size of the audio file to send, or a ListendError saying why it cannot be sent."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ListendError(f"{path}: no such file") from None
    except OSError as exc:
        raise ListendError(f"{path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ListendError(f"{path} is a directory; give an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise ListendError(f"{path} is not a regular file; give an audio file")
    if not os.access(path, os.R_OK):
        raise ListendError(f"{path}: permission denied")
    return info.st_size


async def _run(args: argparse.Namespace, size: int | None) -> int:
    options = options_from(args)
    key = os.environ.get("DEEPGRAM_API_KEY") or None
    local = args.local or (key is None and args.url is None)
    if local and not args.local:
        log.warning("no DEEPGRAM_API_KEY: transcribing with the offline engine (English only)")
    if local:
        from listend.engine.choice import start_engine  # noqa: PLC0415
        from listend.engine.workers import EngineError  # noqa: PLC0415

        workers = 2 if args.multichannel else 1
        try:
            # the engine fetches a URL or calls back only when this command line asks it to
            engine = await start_engine(
                args.engine,
                args.engine_model,
                workers=workers,
                wyoming=args.wyoming,
                allow_url=size is None,
                allow_callback="callback" in options,
            )
        except EngineError as exc:
            raise ListendError(f"cannot start the local engine: {exc}") from exc
        try:
            log.info(
                "transcribing with the local engine (%s) at %s", engine.description, engine.url
            )
            progress = Progress(size or 0, sys.stderr, duration=_duration(args.source))
            engine.rest.on_decoded = progress.decoded_to
            result = await _request(
                args, options, engine.url, engine.token, size, progress=progress
            )
            if "callback" in options:
                _print_request_id(result)
                # The engine lives in this process: stay until it has called back.
                log.info("waiting for the local engine to deliver the callback")
                await engine.rest.wait_for_callbacks()
                return 0
        finally:
            await engine.stop()
    else:
        progress = Progress(size or 0, sys.stderr)
        result = await _request(args, options, args.url, key or "none", size, progress=progress)
    if "callback" in options:
        _print_request_id(result)
        return 0
    text = FORMATTERS[args.format](result)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


async def _request(
    args: argparse.Namespace,
    options: dict[str, Any],
    base_url: str | None,
    api_key: str,
    size: int | None,
    *,
    progress: Progress,
) -> dict[str, Any]:
    import httpx  # noqa: PLC0415 - the SDK (and its httpx) are slow to import
    from deepgram import AsyncDeepgramClient  # noqa: PLC0415
    from deepgram.core.api_error import ApiError  # noqa: PLC0415
    from deepgram.environment import DeepgramClientEnvironment  # noqa: PLC0415

    client_args: dict[str, Any] = {"api_key": api_key}
    if base_url is not None:
        ws = base_url.replace("https://", "wss://").replace("http://", "ws://")
        client_args["environment"] = DeepgramClientEnvironment(
            base=base_url, production=ws, agent=ws, agent_rest=base_url
        )
    extra_query = {
        name: getattr(args, name)
        for name in ("sample_rate", "channels")
        if getattr(args, name) is not None
    }
    request_options: dict[str, Any] = {"timeout_in_seconds": TIMEOUT, "max_retries": 0}
    if extra_query:
        request_options["additional_query_parameters"] = extra_query
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True) as http:
            client = AsyncDeepgramClient(**client_args, httpx_client=http)
            response = await _send(
                client.listen.v1.media, args, options, request_options, size, progress=progress
            )
    except ApiError as exc:
        raise _api_failure(exc) from None
    except (OSError, httpx.TransportError) as exc:
        where = redact_url(base_url) if base_url else "Deepgram"
        raise ListendError(f"cannot reach {where}: {exc}") from None
    result: dict[str, Any] = response.model_dump(mode="json", exclude_none=True, by_alias=True)
    return result


async def _send(
    media: Any,
    args: argparse.Namespace,
    options: dict[str, Any],
    request_options: dict[str, Any],
    size: int | None,
    *,
    progress: Progress,
) -> Any:
    ticker = asyncio.create_task(progress.tick(), name="transcribe-progress")
    try:
        if size is None:
            return await media.transcribe_url(
                url=args.source, request_options=request_options, **options
            )
        return await media.transcribe_file(
            request=_read(Path(args.source), progress),
            request_options=request_options,
            **options,
        )
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        progress.done()


def _duration(source: str) -> float | None:
    """Seconds of audio in a WAV file (the local engine's progress shows it), else None."""
    try:
        with wave.open(source, "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, EOFError, wave.Error):
        return None


def _print_request_id(result: dict[str, Any]) -> None:
    sys.stdout.write(f"{result.get('request_id', '')}\n")
    sys.stdout.flush()


def _api_failure(exc: Any) -> ListendError:
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("err_msg") or body.get("message") or json.dumps(body)
    else:
        detail = str(body)
    status = exc.status_code
    message = f"the server answered {status}: {detail}"
    if status in {401, 403}:
        return AuthError(message)
    return ListendError(message)


async def _read(path: Path, progress: Progress) -> AsyncIterator[bytes]:
    """The file in chunks, read in a thread so the loop (and a local engine) keeps running."""
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            progress.advance(len(chunk))
            yield chunk
