"""The worker's model data: the cut dictionary and the shared language model change no result."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pocketsphinx
import pytest

from listend.engine.pool import DecoderPool
from listend.engine.vocabulary import build_aliases, parse_boosts

SAID = "please open the garden window and add eggs to the shopping list"


def hypothesis(decoder, pcm: bytes) -> str:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    found = decoder.hyp()
    return found.hypstr if found is not None else ""


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    pool = DecoderPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def stock() -> pocketsphinx.Decoder:
    """pocketsphinx's own decoder: the whole dictionary and a language model of its own."""
    return pocketsphinx.Decoder(loglevel="ERROR", fwdflat=False, bestpath=True)


def test_pronunciations_are_the_whole_dictionarys(pool, stock):
    lines = Path(stock.config["dict"]).read_text(encoding="utf-8").splitlines()
    words = [line.split(" ", 1)[0] for line in lines]
    words = [w for w in words if "(" not in w]  # vocabulary.py never asks for "word(2)"
    sample = [words[0], words[-1], "read", "live", "a", "zzzz", "listend", "Kitchen"]
    sample += random.Random(20).sample(words, 500)
    assert [pool.lookup_word(w) for w in sample] == [stock.lookup_word(w) or None for w in sample]


def test_the_cut_dictionary_and_shared_lm_decode_exactly_as_pocketsphinx_does(pool, stock, speech):
    pcm = speech(SAID)
    first = pool.acquire(())
    second = pool.acquire(())  # a second decoder on the same language model
    try:
        expected = hypothesis(stock, pcm)
        assert expected  # something was heard
        assert hypothesis(first.decoder, pcm) == expected
        assert hypothesis(second.decoder, pcm) == expected
    finally:
        pool.release(first)
        pool.release(second)


def test_aliases_stay_with_the_decoder_that_has_them(pool, speech):
    pcm = speech(SAID)
    aliases, warnings = build_aliases(parse_boosts([], ["garden window"]), pool.lookup_word)
    assert not warnings
    plain = pool.acquire(())  # holds the shared LM while another decoder gets aliases
    keyed = pool.acquire(tuple(aliases))
    try:
        assert "__kw" in hypothesis(keyed.decoder, pcm)
        assert "__kw" not in hypothesis(plain.decoder, pcm)
    finally:
        pool.release(plain)
        pool.release(keyed)
    # Both idle: the keyed one serves a plain stream only after giving up its aliases.
    again = [pool.acquire(()) for _ in range(3)]
    try:
        assert all("__kw" not in hypothesis(p.decoder, pcm) for p in again)
        assert all(not p.aliases and not p.tokens for p in again)
    finally:
        for pooled in again:
            pool.release(pooled)


def test_a_lone_decoder_takes_the_shared_lm_for_its_aliases_and_gets_a_clean_one_back(speech):
    pool = DecoderPool(max_idle=1)
    try:
        lone_decoder(pool, speech)
    finally:
        pool.close()


def lone_decoder(pool: DecoderPool, speech) -> None:
    pcm = speech(SAID)
    aliases, _ = build_aliases(parse_boosts([], ["garden window"]), pool.lookup_word)
    keyed = pool.acquire(tuple(aliases))
    assert "__kw" in hypothesis(keyed.decoder, pcm)
    pool.release(keyed)
    plain = pool.acquire(())
    assert plain is keyed  # reused, not rebuilt
    assert "__kw" not in hypothesis(plain.decoder, pcm)
    assert pool.built == 1
