"""The ``microphone`` source: PyAudio capture in a thread, re-opened when the device comes back.

Each attempt runs one thread that looks the device up in a fresh PortAudio device list, opens
it and does blocking reads, handing chunks to the event loop with ``call_soon_threadsafe``. A
read error (USB microphone unplugged) or a missing device ends the attempt; the shared
:func:`~listend.daemon.restarting.restarting` loop backs off and tries again, so other sources
and the daemon never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from listend.api import (
    AudioFormat,
    Backoff,
    PluginContext,
    RestartingSourceConfig,
    RestartStats,
    Source,
    SourceInterrupted,
    restart_problem,
    restarting,
)
from listend.plugins.portaudio import (
    AudioDeviceError,
    InputDevice,
    find_input_device,
    input_devices,
    portaudio,
    portaudio_call,
)

if TYPE_CHECKING:
    import pyaudio

log = logging.getLogger(__name__)

#: Audio held between the capture thread and the loop before the oldest chunk is dropped.
QUEUE_SECONDS = 10.0


class MicrophoneConfig(RestartingSourceConfig):
    device: str | Annotated[int, Field(ge=0, le=65535)] | None = Field(
        default=None,
        description="part of the device name as `listend devices` shows it, or its index; "
        "default: the system's default input",
    )
    sample_rate: int = Field(default=16000, ge=8000, le=192000, description="Hz")
    channels: int = Field(default=1, ge=1, le=32)
    frames_per_buffer: int = Field(
        default=1600, ge=64, le=65536, description="frames per read (1600 = 100 ms at 16 kHz)"
    )
    max_retry_delay: float = Field(
        default=5.0, gt=0, le=600, description="longest wait between attempts to re-open"
    )
    stall_warning: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="warn when the device delivers nothing for this long (s)",
    )


@dataclass
class MicrophoneStats(RestartStats):
    device: str | None = None
    overflows: int = 0
    dropped_chunks: int = 0


@dataclass(frozen=True, slots=True)
class _Opened:
    device: InputDevice


@dataclass(frozen=True, slots=True)
class _Failed:
    reason: str


@dataclass(frozen=True, slots=True)
class _Crashed:
    error: BaseException


_Item = bytes | _Opened | _Failed | _Crashed
# pyaudio.paInvalidSampleRate, paInvalidChannelCount, paSampleFormatNotSupported (pyaudio,
# and PortAudio with it, is imported only once a microphone is used: 4 MB otherwise)
_FORMAT_ERRORS = {-9997, -9998, -9994}
PA_INT16 = 8  # pyaudio.paInt16
PA_INPUT_OVERFLOWED = -9981  # pyaudio.paInputOverflowed


def _is_power_of_ten(count: int) -> bool:
    return str(count).rstrip("0") == "1"


class _CaptureThread:
    """One open of the device: blocking reads in a thread, items into an asyncio queue."""

    def __init__(self, label: str, config: MicrophoneConfig, stats: MicrophoneStats) -> None:
        self.label = label
        self.config = config
        self.stats = stats
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.max_chunks = max(2, int(QUEUE_SECONDS * config.sample_rate / config.frames_per_buffer))
        self.finished = asyncio.Event()
        self._stop = threading.Event()
        self._stream: Any = None
        self._doing = "opening PortAudio"
        self._thread = threading.Thread(
            target=self._run, name=f"listend[{label.replace(' ', ':')}].capture", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    async def close(self) -> None:
        """Stop reading and wait for the thread to close the device and end."""
        self._stop.set()
        period = self.config.frames_per_buffer / self.config.sample_rate
        try:
            async with asyncio.timeout(max(3.0, 4 * period)):
                await self.finished.wait()
        except TimeoutError:
            log.warning(
                "%s: the capture thread is still blocked in a read; it ends when the device "
                "returns data or an error",
                self.label,
            )

    # -- loop side ----------------------------------------------------------------------------

    def _deliver(self, item: _Item) -> None:
        if isinstance(item, bytes) and self.queue.qsize() >= self.max_chunks:
            self.queue.get_nowait()
            self.stats.dropped_chunks += 1
            if _is_power_of_ten(self.stats.dropped_chunks):
                log.warning(
                    "%s: audio is not being consumed; dropped the oldest chunk (%d so far)",
                    self.label,
                    self.stats.dropped_chunks,
                )
        self.queue.put_nowait(item)

    # -- thread side --------------------------------------------------------------------------

    def _post(self, item: _Item) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stop.set()
            return False
        return True

    def _run(self) -> None:
        try:
            with portaudio() as pa:
                device = find_input_device(input_devices(pa), self.config.device)
                self._doing = f"opening {device.describe()}"
                self._check_format(pa, device)
                try:
                    self._open(pa, device)
                    self._post(_Opened(device))
                    self._doing = f"reading from {device.describe()}"
                    self._read_until_stopped(pa, device)
                finally:
                    self._close_stream()
        except AudioDeviceError as exc:
            self._post(_Failed(str(exc)))
        except OSError as exc:  # PortAudio errors: device gone, busy, or failing
            self._post(_Failed(f"{self._doing} failed: {_portaudio_reason(exc)}"))
        except Exception as exc:
            self._post(_Crashed(exc))
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.loop.call_soon_threadsafe(self.finished.set)

    def _check_format(self, pa: pyaudio.PyAudio, device: InputDevice) -> None:
        cfg = self.config
        if cfg.channels > device.max_input_channels:
            msg = f"{device.describe()} has {device.max_input_channels} input channels, "
            msg += f"channels: {cfg.channels} asks for more"
            raise AudioDeviceError(msg)
        try:
            with portaudio_call():
                pa.is_format_supported(
                    cfg.sample_rate,
                    input_device=device.index,
                    input_channels=cfg.channels,
                    input_format=PA_INT16,
                )
        except ValueError as exc:  # PyAudio: (message, PortAudio error code)
            reason, code = (*exc.args, None)[:2]
            if code not in _FORMAT_ERRORS:
                raise OSError(code, str(reason)) from None  # could not even open it
            msg = f"{device.describe()} cannot capture {cfg.sample_rate} Hz, {cfg.channels} ch, "
            msg += f"16-bit: {reason} (its default rate is {device.default_sample_rate:g} Hz)"
            raise AudioDeviceError(msg) from None

    def _open(self, pa: pyaudio.PyAudio, device: InputDevice) -> None:
        cfg = self.config
        with portaudio_call():
            self._stream = pa.open(
                rate=cfg.sample_rate,
                channels=cfg.channels,
                format=PA_INT16,
                input=True,
                input_device_index=device.index,
                frames_per_buffer=cfg.frames_per_buffer,
            )

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        with portaudio_call():
            try:
                stream.close()
            except OSError as exc:  # already failed; closing is best effort
                log.debug("%s: closing the stream: %s", self.label, exc)

    def _read_until_stopped(self, pa: pyaudio.PyAudio, device: InputDevice) -> None:
        frames = self.config.frames_per_buffer
        while not self._stop.is_set():
            try:
                data = self._stream.read(frames, exception_on_overflow=True)
            except OSError as exc:
                if exc.errno != PA_INPUT_OVERFLOWED:
                    raise
                # PyAudio closes the stream when it reports an overflow: count it, reopen.
                self.stats.overflows += 1
                if _is_power_of_ten(self.stats.overflows):
                    log.warning(
                        "%s: input overflow, audio was lost (%d so far)",
                        self.label,
                        self.stats.overflows,
                    )
                self._stream = None
                self._open(pa, device)
                continue
            if not self._post(data):
                return


def _portaudio_reason(exc: OSError) -> str:
    text = exc.strerror or (str(exc.args[-1]) if exc.args else repr(exc))
    return f"{text} (PortAudio error {exc.errno})" if exc.errno is not None else text


class MicrophoneSource(Source):
    type_name = "microphone"
    config_model = MicrophoneConfig
    config: MicrophoneConfig

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        self.stats = MicrophoneStats()
        self._label = f"source {name}"
        self._backoff = Backoff(initial=0.25, cap=self.config.max_retry_delay)

    @property
    def audio_format(self) -> AudioFormat:
        return AudioFormat(self.config.sample_rate, self.config.channels)

    def stream(self) -> AsyncIterator[bytes]:
        return restarting(
            self._capture_once, label=self._label, backoff=self._backoff, stats=self.stats
        )

    def problem(self) -> str | None:
        return restart_problem(self.stats)

    async def _capture_once(self) -> AsyncGenerator[bytes, None]:
        capture = _CaptureThread(self._label, self.config, self.stats)
        capture.start()
        stalled = False
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancellation
                    # that arrives just as an item is ready, and audio is always ready.
                    async with asyncio.timeout(self.config.stall_warning):
                        item = await capture.queue.get()
                except TimeoutError:
                    if not stalled:
                        log.warning(
                            "%s: no audio from the device for %g s",
                            self._label,
                            self.config.stall_warning,
                        )
                    stalled = True
                    continue
                if isinstance(item, bytes):
                    if stalled:
                        log.info("%s: audio is flowing again", self._label)
                        stalled = False
                    yield item
                elif isinstance(item, _Opened):
                    self.stats.device = item.device.describe()
                    log.info(
                        "%s: capturing from %s at %d Hz, %d ch",
                        self._label,
                        self.stats.device,
                        self.config.sample_rate,
                        self.config.channels,
                    )
                elif isinstance(item, _Failed):
                    raise SourceInterrupted(item.reason)
                else:
                    raise item.error
        finally:
            await capture.close()
