"""The environment of every process listend starts: an allowlist, never the daemon's own.

The daemon's environment holds its secrets (``DEEPGRAM_API_KEY``, every ``$env:`` reference,
``CREDENTIALS_DIRECTORY`` where systemd put the credential files). A child (a ``command``
source, ffmpeg, an engine worker) needs none of them, and whatever it reads can come back
through its stderr into the log; so it gets only what locale, time, paths and audio servers
need, plus what the configuration gives it explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Passed through when set: paths, identity, locale, time zone, and the audio servers'
#: sockets (arecord, parec, pw-record find PulseAudio/PipeWire through XDG_RUNTIME_DIR).
ALLOWED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "XDG_RUNTIME_DIR",
        "PULSE_SERVER",
        "PIPEWIRE_REMOTE",
        "ALSA_CONFIG_PATH",
        "PYTHONPATH",  # the engine's workers are `python -m listend.engine.worker`
    }
)
ALLOWED_PREFIXES = ("LC_",)


def child_environment(
    extra: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allowed part of ``environ`` (the daemon's) with ``extra`` (configured) on top."""
    parent = os.environ if environ is None else environ
    env = {
        name: value
        for name, value in parent.items()
        if name in ALLOWED or name.startswith(ALLOWED_PREFIXES)
    }
    env.update(extra or {})
    return env
