"""PortAudio through PyAudio: the device list, device lookup by name, and quiet native logging.

PortAudio is process-global and not thread-safe: initialising, opening, closing and
terminating all happen in :func:`portaudio_call` (reads need no lock). It enumerates
devices only when its init count goes from 0 to 1, so every user opens its own
:class:`pyaudio.PyAudio` per attempt and terminates it afterwards: when no other microphone is
open, the next attempt sees devices plugged in since.

ALSA and JACK print configuration noise on stderr whenever PortAudio probes devices (missing
cards, no JACK server), and PortAudio itself prints a line for every failed open. The ALSA
and JACK callbacks are routed to the ``listend.alsa`` and ``listend.jack`` loggers at debug
level and PortAudio's lines are caught around each call; real failures still surface as
PortAudio errors, which callers report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from listend.api import ListendError

if TYPE_CHECKING:
    import pyaudio

log = logging.getLogger(__name__)
alsa_log = logging.getLogger("listend.alsa")
jack_log = logging.getLogger("listend.jack")

PORTAUDIO_LOCK = threading.Lock()
_NATIVE_CHATTER = re.compile(rb"Expression '.*' failed in '.*', line: \d+|ALSA lib ")

_native_handlers: list[Any] = []  # ctypes callbacks must outlive the libraries' use of them


class AudioDeviceError(ListendError):
    """No usable input device: none matches (the message lists those that exist), or it cannot
    capture the configured format."""


@dataclass(frozen=True, slots=True)
class InputDevice:
    """One PortAudio input device, as ``listend devices`` shows it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    default_sample_rate: float
    is_default: bool = False

    def describe(self) -> str:
        return (
            f"[{self.index}] {self.name!r} ({self.host_api}, {self.max_input_channels} ch, "
            f"{self.default_sample_rate:g} Hz)"
        )


def _decode(raw: bytes | None) -> str:
    return raw.decode(errors="replace") if raw else ""


def _on_alsa_error(
    file: bytes | None, line: int, func: bytes | None, err: int, fmt: bytes | None
) -> None:
    reason = f" ({os.strerror(err)})" if err > 0 else ""
    alsa_log.debug("%s:%d %s(): %s%s", _decode(file), line, _decode(func), _decode(fmt), reason)


def _on_jack_message(message: bytes | None) -> None:
    jack_log.debug("%s", _decode(message))


def quiet_native_logging() -> None:
    """Route ALSA's and JACK's stderr chatter to debug logging (idempotent, best effort)."""
    if _native_handlers:
        return
    import ctypes  # noqa: PLC0415 - only once a microphone is used (0.25 MB of RSS)

    # void handler(const char *file, int line, const char *function, int err, const char *fmt,
    # ...): only the fixed arguments are read, which every ABI listend runs on allows for varargs
    alsa_type = ctypes.CFUNCTYPE(
        None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
    )
    alsa_handler = alsa_type(_on_alsa_error)
    jack_handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(_on_jack_message)
    _native_handlers.extend([alsa_handler, jack_handler])
    try:
        ctypes.CDLL("libasound.so.2").snd_lib_error_set_handler(alsa_handler)
    except (OSError, AttributeError) as exc:
        log.debug("cannot install the ALSA error handler: %s", exc)
    try:
        jack = ctypes.CDLL("libjack.so.0")
        jack.jack_set_error_function(jack_handler)
        jack.jack_set_info_function(jack_handler)
    except (OSError, AttributeError) as exc:
        log.debug("cannot install the JACK message handlers: %s", exc)


@contextlib.contextmanager
def portaudio_call() -> Iterator[None]:
    """Hold :data:`PORTAUDIO_LOCK` for a PortAudio call and keep its stderr chatter at debug.

    PortAudio prints an ``Expression '...' failed in 'src/hostapi/alsa/...'`` line for every
    failed open (each retry while a device is unplugged) and offers no hook for it. During the
    call, file descriptor 2 points at a temporary file; afterwards recognised PortAudio and
    ALSA lines go to debug logging and anything else (another thread's output) is written to
    the real stderr unchanged.
    """
    with PORTAUDIO_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to keep quiet
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                _forward(capture.read())


def _forward(captured: bytes) -> None:
    for line in captured.splitlines(keepends=True):
        if _NATIVE_CHATTER.match(line):
            log.debug("%s", line.decode(errors="replace").rstrip())
        else:
            os.write(2, line)


@contextlib.contextmanager
def portaudio() -> Iterator[pyaudio.PyAudio]:
    """A PyAudio instance of our own (its own PortAudio init count), terminated on exit."""
    import pyaudio  # noqa: PLC0415 - PortAudio is loaded only once a microphone is used

    quiet_native_logging()
    with portaudio_call():
        pa = pyaudio.PyAudio()
    try:
        yield pa
    finally:
        with portaudio_call():
            pa.terminate()


def input_devices(pa: pyaudio.PyAudio) -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's index order."""
    try:
        default_index = int(pa.get_default_input_device_info()["index"])
    except OSError:
        default_index = -1
    host_apis: dict[int, str] = {}
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if int(info["maxInputChannels"]) < 1:
            continue
        api = int(info["hostApi"])
        if api not in host_apis:
            host_apis[api] = str(pa.get_host_api_info_by_index(api)["name"])
        devices.append(
            InputDevice(
                index=index,
                name=str(info["name"]),
                host_api=host_apis[api],
                max_input_channels=int(info["maxInputChannels"]),
                default_sample_rate=float(info["defaultSampleRate"]),
                is_default=index == default_index,
            )
        )
    return devices


def find_input_device(devices: list[InputDevice], wanted: str | int | None) -> InputDevice:
    """The device ``wanted`` names: an index, an exact name, a unique name substring, or default.

    Raises :class:`AudioDeviceError` listing the devices that do exist.
    """
    if wanted is None:
        chosen = [d for d in devices if d.is_default]
        problem = "there is no default input device"
    elif isinstance(wanted, int):
        chosen = [d for d in devices if d.index == wanted]
        problem = f"there is no input device with index {wanted}"
    else:
        chosen = [d for d in devices if d.name == wanted] or [
            d for d in devices if wanted.casefold() in d.name.casefold()
        ]
        problem = f"no input device name contains {wanted!r}"
        if len(chosen) > 1:
            names = ", ".join(d.describe() for d in chosen)
            msg = f"{wanted!r} matches {len(chosen)} input devices: {names}; use a longer part "
            msg += "of the name or the index"
            raise AudioDeviceError(msg)
    if chosen:
        return chosen[0]
    available = "; ".join(d.describe() for d in devices) or "none"
    raise AudioDeviceError(f"{problem}; input devices: {available} (see `listend devices`)")


def list_input_devices() -> list[InputDevice]:
    with portaudio() as pa:
        return input_devices(pa)


def format_devices(devices: list[InputDevice]) -> str:
    """The ``listend devices`` table; ``*`` marks the default input."""
    rows = [("index", "name", "host API", "channels", "default rate")]
    rows += [
        (
            f"{'*' if d.is_default else ' '}{d.index}",
            d.name,
            d.host_api,
            str(d.max_input_channels),
            f"{d.default_sample_rate:g}",
        )
        for d in devices
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def devices_as_json(devices: list[InputDevice]) -> list[dict[str, Any]]:
    return [asdict(d) for d in devices]
