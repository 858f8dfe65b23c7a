"""A decoding worker process (``python -m listend.engine.worker``): streams and warm decoders.

The daemon talks to it over stdin/stdout with length-prefixed pickles: a call is
``(function name, args)``, the answer ``(ok, result or exception)``, strictly in order, so a
stream's calls run in order where its decoder lives. pocketsphinx holds the GIL while it
decodes; separate processes are what let two cores decode at once. The worker exits when its
stdin closes, so it never outlives the daemon.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any

from listend.dgproto.recognizer import RecognizerOutput, StreamParams
from listend.engine.decoding import StreamDecoder
from listend.engine.pipe import read_message, write_message
from listend.engine.pool import DecoderPool
from listend.engine.vocabulary import build_aliases, parse_boosts

log = logging.getLogger(__name__)

_pool = DecoderPool()
_streams: dict[int, StreamDecoder] = {}


def configure(max_idle: int, prewarm: int, log_level: int) -> int:
    """The first call: logging and warm decoders. Returns the pid."""
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s[worker]: %(message)s")
    _pool.max_idle = max_idle
    _pool.prewarm(prewarm)
    return os.getpid()


def open_stream(stream_id: int, params: StreamParams) -> list[str]:
    """Attach a warm decoder (with the stream's keyword aliases); return warnings."""
    boosts = parse_boosts(params.keywords, params.keyterm)
    found, warnings = build_aliases(boosts, _pool.lookup_word) if boosts else ([], [])
    _streams[stream_id] = StreamDecoder(params, _pool.acquire(tuple(found)))
    for warning in warnings:
        log.warning("keywords: %s", warning)
    return warnings


def feed(stream_id: int, audio: bytes) -> list[RecognizerOutput]:
    return _streams[stream_id].feed(audio)


def finalize(stream_id: int) -> list[RecognizerOutput]:
    return _streams[stream_id].finalize()


def close(stream_id: int) -> list[RecognizerOutput]:
    stream = _streams[stream_id]
    try:
        return stream.close()
    finally:
        discard(stream_id)


def discard(stream_id: int) -> None:
    """Give the stream's decoder back to the pool (no results)."""
    stream = _streams.pop(stream_id, None)
    if stream is not None:
        _pool.release(stream.release())


def stats() -> dict[str, int]:
    return {
        "pid": os.getpid(),
        "streams": len(_streams),
        "idle_decoders": _pool.idle,
        "decoders_built": _pool.built,
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


CALLS: dict[str, Callable[..., Any]] = {
    func.__name__: func for func in (configure, open_stream, feed, finalize, close, discard, stats)
}


def _answer(name: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
    try:
        return True, CALLS[name](*args)
    except Exception as exc:
        log.debug("%s failed", name, exc_info=True)
        try:
            pickle.dumps(exc)
        except Exception:
            return False, RuntimeError(f"{type(exc).__name__}: {exc}")
        return False, exc


def main() -> None:
    # Ctrl-C reaches the whole process group, and systemd may signal the whole cgroup: the
    # daemon drains first (its Finalize needs us), then closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt answers
    while (message := read_message(requests)) is not None:
        name, args = message
        write_message(answers, _answer(name, args))


if __name__ == "__main__":
    main()
