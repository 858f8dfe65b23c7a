"""Warm pocketsphinx decoders, pooled and reused inside one worker process.

A decoder costs 0.2-0.45 s to build and memory from deleted decoders is only partly returned,
so decoders are kept and reused. Decoders without keyword aliases share one language model
(``model.py``: 33 MB of a decoder's ~80). Aliases are words added to the LM, so a decoder
that needs them takes the shared LM as its own if nothing else uses it, else reads one of its
own; it stays keyed by them (dictionary words cannot be removed), and serving another stream
it is given the shared LM (or a fresh one) again, which does not know its old aliases. The old
search goes first each time, so a decoder never holds two language models at once.
New decoders start from the cepstral mean of a decoder that has already heard speech: a cold
CMN roughly doubles the word error rate of the first utterance.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from listend.engine.model import EnglishModel
from listend.engine.vocabulary import Alias

log = logging.getLogger(__name__)
_SEARCH = "lm"


@dataclass(eq=False)
class PooledDecoder:
    decoder: Any  # pocketsphinx.Decoder
    aliases: tuple[Alias, ...] = ()
    tokens: dict[str, Alias] = field(default_factory=dict)  # pseudo-word -> alias
    heard_speech: bool = False
    added: int = 0  # tokens ever added: the dictionary keeps them, so names never repeat
    shared_lm: bool = True  # its search uses the pool's shared language model


class DecoderPool:
    def __init__(self, *, max_idle: int = 2) -> None:
        self.max_idle = max_idle
        self._idle: list[PooledDecoder] = []
        self._cmn: str | None = None  # from the last decoder that heard speech
        self._model: EnglishModel | None = None
        self._shared: Any | None = None  # the LM plain decoders share (never has aliases)
        self._sharing = 0  # decoders (idle or in use) whose search uses it
        self.built = 0

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def model(self) -> EnglishModel:
        if self._model is None:
            self._model = EnglishModel()
            self._shared, self._model.first_lm = self._model.first_lm, None
        return self._model

    def close(self) -> None:
        """Forget the idle decoders and the model (tests; a worker keeps its pool to the end)."""
        self._idle.clear()
        self._shared = None
        self._sharing = 0
        if self._model is not None:
            self._model.close()
            self._model = None

    def prewarm(self, count: int) -> None:
        while len(self._idle) < count:
            self._idle.append(self._build())

    def lookup_word(self, word: str) -> str | None:
        """The whole dictionary's phones for ``word`` (decoders have only the LM's words)."""
        return self.model.dictionary.lookup(word)

    def _build(self) -> PooledDecoder:
        self.built += 1
        pooled = PooledDecoder(self.model.decoder(self._cmn), shared_lm=False)
        self._use_shared(pooled)
        return pooled

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
            if not aliases:
                self._use_shared(pooled)
        else:
            pooled = self._build()
        if aliases:
            self._use_own(pooled)
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
            if victim.shared_lm:
                self._sharing -= 1

    def _use_shared(self, pooled: PooledDecoder) -> None:
        """Search the shared LM (read again if a keyed decoder took it); aliases are gone."""
        if not pooled.shared_lm:
            self._drop_search(pooled)
            if self._shared is None:
                self._shared = self.model.load_lm()
            self._search(pooled, self._shared)
            pooled.shared_lm = True
            self._sharing += 1
        pooled.aliases = ()
        pooled.tokens = {}

    def _use_own(self, pooled: PooledDecoder) -> None:
        """Give ``pooled`` a language model no other decoder uses, for its aliases."""
        if pooled.shared_lm and self._sharing == 1:
            self._shared = None  # it was the only user: the shared LM becomes its own
        else:
            self._drop_search(pooled)
            self._search(pooled, self.model.load_lm())
        if pooled.shared_lm:
            pooled.shared_lm = False
            self._sharing -= 1
        pooled.aliases = ()
        pooled.tokens = {}

    @staticmethod
    def _drop_search(pooled: PooledDecoder) -> None:
        # First, so the old LM and search tree are freed before the new ones are built.
        with contextlib.suppress(KeyError):
            pooled.decoder.remove_search(_SEARCH)

    @staticmethod
    def _search(pooled: PooledDecoder, lm: Any) -> None:
        pooled.decoder.add_lm(_SEARCH, lm)
        pooled.decoder.activate_search(_SEARCH)

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
