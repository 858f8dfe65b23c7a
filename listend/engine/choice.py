"""Which local engine: Whisper when the ``whisper`` extra is installed, else pocketsphinx.

``auto`` (the default) never fails: a device without the extra keeps the engine it always
had. Asking for ``whisper`` without the extra is a configuration error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from listend.engine.server import LocalEngine
from listend.engine.whisper_model import (
    BUNDLED_NAME,
    WhisperRuntimeError,
    WhisperSettings,
    whisper_installed,
)
from listend.engine.workers import ENGINE_INFO, EngineError

log = logging.getLogger(__name__)

EngineName = Literal["auto", "pocketsphinx", "whisper", "wyoming"]
ENGINES: tuple[EngineName, ...] = ("auto", "pocketsphinx", "whisper", "wyoming")


def whisper_settings(engine: str, model: Path | None = None) -> WhisperSettings | None:
    """The Whisper settings to run, or None for pocketsphinx alone."""
    if engine not in ENGINES:
        raise EngineError(f"unknown local engine {engine!r} (expected {', '.join(ENGINES)})")
    if engine in {"pocketsphinx", "wyoming"} or (engine == "auto" and not whisper_installed()):
        return None
    if not whisper_installed():
        raise EngineError("the whisper engine needs the extra: pip install 'listend[whisper]'")
    return WhisperSettings(model_dir=model)


def describe(engine: str = "auto", model: Path | None = None) -> str:
    """What :func:`whisper_settings` would run, without loading anything."""
    try:
        settings = whisper_settings(engine, model)
    except EngineError as exc:
        return str(exc)
    if settings is None:
        extra = "" if whisper_installed() else "; pip install 'listend[whisper]' for Whisper"
        return f"pocketsphinx {ENGINE_INFO.version} (US English model{extra})"
    name = model.name if model is not None else BUNDLED_NAME
    return f"whisper {name} (faster-whisper), pocketsphinx interims"


async def start_engine(
    engine: str,
    model: Path | None,
    *,
    workers: int,
    wyoming: str | None = None,
    allow_url: bool = False,
    allow_callback: bool = False,
) -> LocalEngine:
    """A started engine; ``auto`` falls back to pocketsphinx where Whisper cannot decode.

    ``allow_url``/``allow_callback``: let it fetch ``{"url": ...}`` bodies and post callbacks
    (only ``listend transcribe`` does, for what its own command line asks)."""
    if engine == "wyoming" and wyoming is None:
        raise EngineError("the wyoming engine needs a server address (tcp://HOST:PORT)")
    whisper = whisper_settings(engine, model)
    started = LocalEngine(
        workers=workers,
        whisper=whisper,
        wyoming=wyoming if engine == "wyoming" else None,
        allow_url=allow_url,
        allow_callback=allow_callback,
    )
    try:
        await started.start()
    except WhisperRuntimeError as exc:
        if engine != "auto":
            raise
        log.warning("%s; using pocketsphinx", exc)
        started = LocalEngine(workers=workers, allow_url=allow_url, allow_callback=allow_callback)
        await started.start()
    return started
