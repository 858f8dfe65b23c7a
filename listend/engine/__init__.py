"""The offline engine: Deepgram's protocol on loopback, backed by pocketsphinx in worker processes.

Used in-process by the daemon when no API key is configured (``deepgram.url: local``), as a
per-source fallback while Deepgram is unreachable, and by ``listend transcribe --local``.
"""
