"""A capture device for PortAudio on a machine with no sound card: ALSA's ``type file`` PCM.

The device reads its samples from a FIFO the test writes (``infile``). It can be "unplugged"
the way a USB microphone goes away: the FIFO is removed (opening the device fails, so it drops
out of PortAudio's input list) and the tap FIFO that ALSA copies captured audio into loses its
reader, so the next write fails and PortAudio's read returns an error mid-stream. "Plugging it
back" recreates both. Everything lives in the test's own directory, so xdist workers never
share a device.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path


class FifoMic:
    def __init__(self, directory: Path, name: str, *, tap: bool = False) -> None:
        self.name = name
        self.infile = directory / f"{name}.in"
        self.tapfile = directory / f"{name}.tap" if tap else None
        self._writer: int | None = None
        self._tap_reader: int | None = None
        self._draining = threading.Event()
        self._feeding = threading.Event()
        self._drain_thread: threading.Thread | None = None
        self._feed_thread: threading.Thread | None = None

    def asoundrc(self) -> str:
        tap = self.tapfile or "/dev/null"
        return (
            f'pcm.{self.name} {{\n    type file\n    slave.pcm "null"\n    file "{tap}"\n'
            f'    infile "{self.infile}"\n    format "raw"\n}}\n'
        )

    def plug(self, initial: bytes = b"") -> None:
        """Make the device present, holding ``initial`` audio (up to 64 KiB) from the start.

        The FIFO is filled under a temporary name and renamed into place, so the capture never
        sees half of a write (a short read would leave stale samples in ALSA's buffer). Our
        writer end stays open: without one, ALSA's open of the FIFO would block.
        """
        if self.tapfile is not None:
            if not self.tapfile.exists():
                os.mkfifo(self.tapfile)
            self._tap_reader = os.open(self.tapfile, os.O_RDONLY | os.O_NONBLOCK)
            self._draining.set()
            self._drain_thread = threading.Thread(
                target=self._drain_tap, args=(self._tap_reader,), daemon=True
            )
            self._drain_thread.start()
        staging = self.infile.with_suffix(".staging")
        os.mkfifo(staging)
        self._writer = os.open(staging, os.O_RDWR)
        if initial:
            os.write(self._writer, initial)
        staging.rename(self.infile)

    def start_feeding(self, pattern: bytes, interval: float = 0.05) -> None:
        """Write ``pattern`` every ``interval`` seconds until :meth:`stop_feeding`."""
        assert self._writer is not None
        self._feeding.set()
        self._feed_thread = threading.Thread(
            target=self._feed, args=(self._writer, pattern, interval), daemon=True
        )
        self._feed_thread.start()

    def stop_feeding(self) -> None:
        self._feeding.clear()
        if self._feed_thread is not None:
            self._feed_thread.join(timeout=10)
            self._feed_thread = None

    def unplug(self) -> None:
        """Remove the device; the capture stream fails at ALSA's next write to the tap.

        Keep feeding until the source notices: a real device errors on its next period too.
        """
        self.infile.unlink()
        self._stop_draining()

    def drop_writer(self) -> None:
        """After an unplug: stop feeding and close the old writer (its FIFO is gone)."""
        self.stop_feeding()
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    def close(self) -> None:
        """Stop feeding and close our ends: a capture read blocked on the FIFO then returns."""
        self.drop_writer()
        self._stop_draining()
        with contextlib.suppress(FileNotFoundError):
            self.infile.unlink()

    def _stop_draining(self) -> None:
        self._draining.clear()
        if self._drain_thread is not None:
            self._drain_thread.join(timeout=10)
            self._drain_thread = None
        if self._tap_reader is not None:
            os.close(self._tap_reader)
            self._tap_reader = None

    def _drain_tap(self, fd: int) -> None:
        while self._draining.is_set():
            try:
                if not os.read(fd, 65536):
                    time.sleep(0.01)
            except BlockingIOError:
                time.sleep(0.01)

    def _feed(self, fd: int, pattern: bytes, interval: float) -> None:
        while self._feeding.is_set():
            # Non-blocking, so a full FIFO (nobody reading after an unplug) never hangs us.
            os.set_blocking(fd, False)
            with contextlib.suppress(BlockingIOError):
                os.write(fd, pattern)
            os.set_blocking(fd, True)
            time.sleep(interval)
