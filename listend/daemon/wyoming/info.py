"""The ``info`` answer to ``describe``: what Home Assistant lists as the speech-to-text engine.

Home Assistant rejects a server whose info has nothing installed and builds its language list
from the installed models, so the one model is always ``installed`` with the configured
languages.
"""

from __future__ import annotations

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from listend import __version__
from listend.daemon.config.models import ListendConfig

PROGRAM = "listend"
_LISTEND = Attribution(name="listend", url="")  # no public home page yet
_DEEPGRAM = Attribution(name="Deepgram", url="https://deepgram.com")
_POCKETSPHINX = Attribution(
    name="CMU PocketSphinx", url="https://github.com/cmusphinx/pocketsphinx"
)


def describe(config: ListendConfig) -> Info:
    wyoming = config.wyoming
    languages = list(wyoming.languages) if wyoming is not None else ["en"]
    if config.deepgram.uses_local_engine():
        model = AsrModel(
            name="pocketsphinx-en-us",
            attribution=_POCKETSPHINX,
            installed=True,
            description="listend's offline engine (US English)",
            version=None,
            languages=["en"],
        )
    else:
        options = config.deepgram.options
        if wyoming is not None:
            options = wyoming.stream.merged_over(options)
        model = AsrModel(
            name=options.model or "deepgram",
            attribution=_DEEPGRAM,
            installed=True,
            description="Deepgram streaming speech-to-text through listend",
            version=None,
            languages=languages,
        )
    program = AsrProgram(
        name=PROGRAM,
        attribution=_LISTEND,
        installed=True,
        description="listend: Deepgram with reconnects and offline fallback",
        version=__version__,
        models=[model],
        supports_transcript_streaming=True,
    )
    return Info(asr=[program])
