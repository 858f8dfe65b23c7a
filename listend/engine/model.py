"""The US English model as one decoding worker loads it: once, shared by its decoders.

Where a worker's memory went (pocketsphinx 5.1.1, measured with smaps): each ``Decoder`` read
its own copy of the 27 MB language model (33 MB in memory), the whole 135k-entry dictionary
and built a search tree over it, ~91 MB a decoder. Two things cut that without changing a
single result:

- the decoders of one worker share one language model (``NGramModel``) until one needs
  keyword aliases, which are added to the LM (the pool in ``pool.py`` keeps track);
- the dictionary is cut to the words the language model knows (79k of 135k entries): the
  n-gram search ignores every other dictionary word (``ngram_search_fwdtree.c``: "Ignore
  dictionary words not in LM"), so they only cost memory. Keyword pronunciations still come
  from the whole dictionary, looked up in the file (``DictionaryFile``).
"""

from __future__ import annotations

import bisect
import logging
import mmap
import tempfile
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


def _pocketsphinx() -> Any:
    import pocketsphinx  # noqa: PLC0415 - only worker processes load the model

    return pocketsphinx


class DictionaryFile:
    """Pronunciations looked up in the dictionary file itself (sorted by word), not in memory."""

    def __init__(self, path: str) -> None:
        with Path(path).open("rb") as file:
            self._data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self._starts = _LineStarts(self._data)

    def lookup(self, word: str) -> str | None:
        """The phones of ``word``'s first pronunciation, as ``Decoder.lookup_word`` gives them."""
        key = word.encode()
        size = len(self._data)
        offset = bisect.bisect_left(self._starts, key, key=self._base_at)
        start = self._starts[offset] if offset < size else size
        while start < size:  # the word, then its alternates "word(2)"...
            line = self._line(start)
            token, _, phones = line.partition(b" ")
            if token.split(b"(", 1)[0] != key:
                break
            if token == key:
                return " ".join(phones.decode().split()) or None
            start += len(line) + 1
        return None

    def close(self) -> None:
        self._data.close()

    def _line(self, start: int) -> bytes:
        end = self._data.find(b"\n", start)
        return self._data[start : end if end >= 0 else len(self._data)]

    def _base_at(self, start: int) -> bytes:
        if start >= len(self._data):
            return b"\xff"  # past the last line: after every word
        return self._line(start).split(b" ", 1)[0].split(b"(", 1)[0]


class _LineStarts:
    """Byte offset -> where the first line at or after it starts: monotonic, so bisecting over
    the offsets finds a word in ~22 probes of the file, with no index in memory."""

    def __init__(self, data: mmap.mmap) -> None:
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, offset: int) -> int:
        if offset == 0:
            return 0
        end = self._data.find(b"\n", offset - 1)
        return len(self._data) if end < 0 else end + 1


class EnglishModel:
    """pocketsphinx's bundled US English model: decoders on a cut dictionary and a shared LM."""

    def __init__(self) -> None:
        ps = _pocketsphinx()
        config = ps.Config(loglevel="ERROR")
        self._lm_path = str(config["lm"])
        self.logmath = ps.LogMath(float(config["logbase"]), 0, use_table=True)  # as ps_init
        self.dictionary = DictionaryFile(str(config["dict"]))
        lm = self.load_lm()
        self._dict: IO[bytes] | None = None
        self.dict_path = str(config["dict"])
        try:
            self._dict, self.dict_path = _known_words_dictionary(
                self.dict_path, lm, self.logmath.get_zero()
            )
        except OSError as exc:  # no writable temporary directory: the whole dictionary, then
            log.warning("local engine: cannot cut the dictionary (%s); using all of it", exc)
        self.first_lm: Any | None = lm  # handed to the pool, so it is not read twice

    def close(self) -> None:
        """Only once no decoder will be built again (they read the cut dictionary's file)."""
        self.dictionary.close()
        if self._dict is not None:
            self._dict.close()

    def load_lm(self) -> Any:
        """A language model of its own (0.03-0.15 s, 33 MB)."""
        ps = _pocketsphinx()
        config = ps.Config(loglevel="ERROR")
        return ps.NGramModel(config, self.logmath, self._lm_path)

    def decoder(self, cmninit: str | None) -> Any:
        """A decoder without a search: the pool gives it a language model."""
        options: dict[str, Any] = {
            "loglevel": "ERROR",
            "fwdflat": False,
            "bestpath": True,
            "lm": None,
            "dict": self.dict_path,
        }
        if cmninit is not None:
            options["cmninit"] = cmninit
        return _pocketsphinx().Decoder(**options)


def _known_words_dictionary(path: str, lm: Any, zero: int) -> tuple[IO[bytes], str]:
    """A temporary copy of ``path`` with only the entries whose word ``lm`` knows.

    On Linux it is unlinked at once and read as ``/proc/self/fd/N`` (each open starts at the
    beginning), so nothing is left behind even if the worker is killed; elsewhere it is a named
    file removed when it is closed.
    """
    if Path("/proc/self/fd").is_dir():
        kept: IO[bytes] = tempfile.TemporaryFile(prefix="listend-dict-")  # noqa: SIM115
        name = f"/proc/self/fd/{kept.fileno()}"
    else:
        kept = tempfile.NamedTemporaryFile(prefix="listend-dict-", suffix=".dict")  # noqa: SIM115
        name = kept.name
    last_base, known = b"", False
    with Path(path).open("rb") as source:
        for line in source:
            base = line.split(b" ", 1)[0].split(b"(", 1)[0]
            if base != last_base:  # alternates follow their word: one LM query per word
                last_base, known = base, lm.prob([base.decode()]) != zero
            if known:
                kept.write(line)
    kept.flush()
    return kept, name
