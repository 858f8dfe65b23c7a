"""Warm pocketsphinx decoders, pooled and reused inside one worker process.

A decoder costs 0.2-0.45 s and ~90 MB to build, and memory from deleted decoders is only partly
returned, so decoders are kept and reused. A decoder with keyword aliases stays keyed by them
(aliases cannot be removed); one with other aliases gets a fresh language model (~0.15 s).
New decoders start from the cepstral mean of a decoder that has already heard speech: a cold
CMN roughly doubles the word error rate of the first utterance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from listend.engine.vocabulary import Alias

log = logging.getLogger(__name__)


def _pocketsphinx() -> Any:
    import pocketsphinx  # noqa: PLC0415 - only worker processes load the model

    return pocketsphinx


@dataclass(eq=False)
class PooledDecoder:
    decoder: Any  # pocketsphinx.Decoder
    aliases: tuple[Alias, ...] = ()
    tokens: dict[str, Alias] = field(default_factory=dict)  # pseudo-word -> alias
    heard_speech: bool = False
    added: int = 0  # tokens ever added: the dictionary keeps them, so names never repeat
    searches: int = 0


class DecoderPool:
    def __init__(self, *, max_idle: int = 2) -> None:
        self.max_idle = max_idle
        self._idle: list[PooledDecoder] = []
        self._cmn: str | None = None  # from the last decoder that heard speech
        self.built = 0

    @property
    def idle(self) -> int:
        return len(self._idle)

    def prewarm(self, count: int) -> None:
        while len(self._idle) < count:
            self._idle.append(self._build())

    def lookup_word(self, word: str) -> str | None:
        """The dictionary's phones for ``word`` (the same dictionary in every decoder)."""
        if not self._idle:
            self._idle.append(self._build())
        phones = self._idle[-1].decoder.lookup_word(word)
        return str(phones) if phones else None

    def _build(self) -> PooledDecoder:
        options: dict[str, Any] = {"loglevel": "ERROR", "fwdflat": False, "bestpath": True}
        if self._cmn is not None:
            options["cmninit"] = self._cmn
        self.built += 1
        return PooledDecoder(_pocketsphinx().Decoder(**options))

    def acquire(self, aliases: tuple[Alias, ...]) -> PooledDecoder:
        """A decoder whose vocabulary is exactly the base LM plus ``aliases``."""
        for pooled in reversed(self._idle):
            if pooled.aliases == aliases:
                self._idle.remove(pooled)
                return pooled
        plain = [pooled for pooled in self._idle if not pooled.aliases]
        if plain:
            pooled = plain[-1]
            self._idle.remove(pooled)
        elif self._idle:
            pooled = self._idle.pop()
            self._reset_lm(pooled)
        else:
            pooled = self._build()
        if aliases:
            self._add_aliases(pooled, aliases)
        return pooled

    def release(self, pooled: PooledDecoder) -> None:
        if pooled.heard_speech:
            self._cmn = str(pooled.decoder.get_cmn())
        self._idle.append(pooled)
        while len(self._idle) > self.max_idle:
            # Keep plain decoders first: they serve any stream after at most the alias adds.
            victim = next((p for p in self._idle if p.aliases), self._idle[0])
            self._idle.remove(victim)

    @staticmethod
    def _add_aliases(pooled: PooledDecoder, aliases: tuple[Alias, ...]) -> None:
        decoder = pooled.decoder
        lm = decoder.get_lm()
        for index, alias in enumerate(aliases):
            token = "_".join(alias.words) + f"__kw{pooled.added}"
            pooled.added += 1
            lm.add_word(token, alias.weight)
            # Rebuilding the search is the slow part (~90 ms): only after the last alias.
            decoder.add_word(token, alias.phones, index == len(aliases) - 1)
            pooled.tokens[token] = alias
        pooled.aliases = aliases

    @staticmethod
    def _reset_lm(pooled: PooledDecoder) -> None:
        ps = _pocketsphinx()
        decoder = pooled.decoder
        lm = ps.NGramModel(decoder.config, decoder.logmath, decoder.config["lm"])
        pooled.searches += 1
        name = f"lm{pooled.searches}"
        decoder.add_lm(name, lm)
        decoder.activate_search(name)
        pooled.aliases = ()
        pooled.tokens = {}
