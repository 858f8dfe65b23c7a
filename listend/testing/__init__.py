"""Test helpers for listend and its plugins: a Deepgram streaming server on loopback.

``DeepgramTestServer`` speaks Deepgram's ``/v1/listen`` WebSocket protocol (Token/Bearer auth,
400 on bad parameters, KeepAlive, Finalize, CloseStream, idle close 1011) with transcripts
decoded from :class:`Script` audio, so a test knows the exact words to expect. Faults are
planned with ``server.faults`` and every connection is recorded in ``server.connections``.
"""

from __future__ import annotations

from listend.dgproto.records import Refusal
from listend.testing.faults import Drop, FaultPlan, Refuse, Stall
from listend.testing.records import ConnectionRecord, ControlMessage, Recorder
from listend.testing.scripted import Script, ScriptedRecognizer, WordSpan, interleave
from listend.testing.server import (
    DEFAULT_API_KEY,
    DeepgramTestServer,
    ThreadedDeepgramTestServer,
    running_server,
)

__all__ = [
    "DEFAULT_API_KEY",
    "ConnectionRecord",
    "ControlMessage",
    "DeepgramTestServer",
    "Drop",
    "FaultPlan",
    "Recorder",
    "Refusal",
    "Refuse",
    "Script",
    "ScriptedRecognizer",
    "Stall",
    "ThreadedDeepgramTestServer",
    "WordSpan",
    "interleave",
    "running_server",
]
