"""The local engine's pure parts: resampling, sample formats, keyword aliases, output formats."""

from __future__ import annotations

import io
import math
import struct

import numpy as np
import pytest
from deepgram.types.listen_v1response import ListenV1Response

from listend.dgproto.recognizer import Hypothesis, RecognizedWord, RecognizerInfo
from listend.engine.audio import PcmConverter
from listend.engine.formats import UnsupportedAudio
from listend.engine.prerecorded import BadOptions, PrerecordedOptions, build_response
from listend.engine.resample import Resampler
from listend.engine.vocabulary import Boost, build_aliases, parse_boosts
from listend.progress import Progress
from listend.subtitles import cues, to_srt, to_text, to_vtt
from tests.support.evaluation import word_error_rate, word_errors


def tone(rate: int, freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 48000])
def test_resampler_keeps_time_and_signal_across_odd_chunks(rate):
    x = tone(rate, 440, 2.0)
    resampler = Resampler(rate)
    rng = np.random.default_rng(rate)
    pieces, at = [], 0
    while at < len(x):
        size = int(rng.integers(1, 4000))
        pieces.append(resampler.process(x[at : at + size]))
        at += size
    pieces.append(resampler.process(np.zeros(0, np.float32), final=True))
    y = np.concatenate(pieces)
    assert len(y) == 32000  # exactly 2 s at 16 kHz: times stay exact
    expected = 0.5 * np.sin(2 * math.pi * 440 * np.arange(len(y)) / 16000)
    assert np.abs(y[64:-64] - expected[64:-64]).max() < 0.01


def test_downsampling_filters_what_16k_cannot_hold():
    kept = Resampler(48000).process(tone(48000, 3000, 1.0), final=True)
    aliased = Resampler(48000).process(tone(48000, 12000, 1.0), final=True)
    assert rms(kept[100:-100]) > 0.3
    assert rms(aliased[100:-100]) < 0.01  # 12 kHz would alias to 4 kHz without the low-pass


def test_converter_downmixes_decodes_and_splits_anywhere():
    stereo = struct.pack("<4h", 1000, 3000, -2000, -4000) * 800  # 1600 frames at 16 kHz
    converter = PcmConverter("linear16", 16000, 2)
    out = converter.convert(stereo[:7]) + converter.convert(stereo[7:])
    samples = struct.unpack(f"<{len(out) // 2}h", out)
    assert len(samples) == 1600
    assert samples[:2] == (2000, -3000)
    mulaw = PcmConverter("mulaw", 8000, 1).convert(bytes([0x00, 0x80, 0xFF]) * 80, final=True)
    assert len(mulaw) == 480 * 2  # 240 samples at 8 kHz -> 480 at 16 kHz


@pytest.mark.parametrize(
    ("encoding", "rate", "channels", "message"),
    [
        ("opus", 16000, 1, "encoding 'opus' is not supported"),
        ("linear16", 1000, 1, "sample_rate 1000 is out of range"),
        ("linear16", 16000, 0, "channels 0 is out of range"),
    ],
)
def test_unusable_formats_say_why(encoding, rate, channels, message):
    with pytest.raises(UnsupportedAudio, match=message):
        PcmConverter(encoding, rate, channels)


DICTIONARY = {
    "kitchen": "K IH CH AH N",
    "lights": "L AY T S",
    "list": "L IH S T",
    "end": "EH N D",
    "lis": "L IH S",
    "tend": "T EH N D",
}


def test_keywords_become_aliases_with_weights_and_spelled_unknown_words():
    boosts = parse_boosts(["kitchen lights:3", "listend", "zzqx", "lights:-2"], ["Kitchen"])
    assert boosts[0] == Boost("kitchen lights", 3.0)
    aliases, warnings = build_aliases(boosts, DICTIONARY.get)
    assert [(a.words, a.phones, a.weight) for a in aliases] == [
        (("kitchen", "lights"), "K IH CH AH N L AY T S", 3000.0),
        (("listend",), "L IH S T EH N D", 1000.0),  # "list" + "end": fewest, longest first
        (("kitchen",), "K IH CH AH N", 1000.0),
    ]
    assert aliases[2].display == ("Kitchen",)
    assert warnings == [
        "'zzqx': no pronunciation for zzqx; ignored",
        "'lights': the local engine cannot suppress words; ignored",
    ]


def test_word_error_rate():
    assert word_errors("Turn on the lights.", "turn the light on") == (3, 4)
    assert word_error_rate([("a b", "a b"), ("c d", "c")]) == 0.25


def _final(words: list[tuple[str, float, float]], **kwargs) -> Hypothesis:
    recognized = tuple(RecognizedWord(w, s, e, 0.9, w.capitalize()) for w, s, e in words)
    return Hypothesis(is_final=True, start=0, duration=0, words=recognized, **kwargs)


def test_prerecorded_json_has_deepgrams_shape():
    options = PrerecordedOptions.from_query(
        {"utterances": ["true"], "paragraphs": ["true"], "diarize": ["true"], "tag": ["a"]}
    )
    finals = [
        _final([("hello", 0.5, 0.9), ("there", 0.9, 1.3)]),
        _final([("again", 5.0, 5.5)]),
    ]
    info = RecognizerInfo(name="pocketsphinx-en-us", version="5.1.1", arch="pocketsphinx")
    body = build_response(
        request_id="r1",
        sha256="0" * 64,
        duration=6.0,
        channels=[finals],
        options=options,
        info=info,
    )
    alternative = body["results"]["channels"][0]["alternatives"][0]
    assert alternative["transcript"] == "Hello There Again"
    assert alternative["words"][0] == {
        "word": "hello",
        "start": 0.5,
        "end": 0.9,
        "confidence": 0.9,
        "punctuated_word": "Hello",
        "speaker": 0,
    }
    assert alternative["paragraphs"]["transcript"] == "\nHello There\n\nAgain"
    assert [u["transcript"] for u in body["results"]["utterances"]] == ["Hello There", "Again"]
    assert body["metadata"]["warnings"][0]["parameter"] == "diarize"
    assert body["metadata"]["tags"] == ["a"]
    ListenV1Response.model_validate(body)  # the SDK's own model accepts it


def test_prerecorded_options_reject_garbage():
    with pytest.raises(BadOptions, match="punctuate: expected true or false"):
        PrerecordedOptions.from_query({"punctuate": ["maybe"]})
    with pytest.raises(BadOptions, match="callback_method: expected POST or PUT"):
        PrerecordedOptions.from_query({"callback_method": ["GET"]})


RESULT = {
    "metadata": {"duration": 9.0},
    "results": {
        "channels": [
            {
                "alternatives": [
                    {
                        "transcript": "hello world again",
                        "words": [
                            {"word": "hello", "start": 0.5, "end": 0.9, "punctuated_word": "Hello"},
                            {"word": "world", "start": 0.9, "end": 1.3},
                            {"word": "again", "start": 3661.0, "end": 3661.5},
                        ],
                    }
                ]
            }
        ]
    },
}


def test_subtitles_split_at_pauses_and_format_times():
    assert [c.text for c in cues(RESULT)] == ["Hello world", "again"]
    # a cue stays on screen at least a second (the next one starts much later)
    assert to_srt(RESULT).splitlines()[:3] == ["1", "00:00:00,500 --> 00:00:01,500", "Hello world"]
    vtt = to_vtt(RESULT)
    assert vtt.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nHello world\n")
    assert "01:01:01.000 --> 01:01:02.000\nagain" in vtt
    assert to_text(RESULT) == "Hello world\n\nagain\n"  # a new paragraph after a long pause


def test_transcribed_vtt_escapes_markup_and_srt_keeps_it():
    words = [
        {"word": "<b>", "start": 0.0, "end": 0.5},
        {"word": "R&D", "start": 0.5, "end": 1.0},
    ]
    result = {"results": {"channels": [{"alternatives": [{"transcript": "", "words": words}]}]}}
    assert to_vtt(result) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n&lt;b&gt; R&amp;D\n"
    assert to_srt(result) == "1\n00:00:00,000 --> 00:00:01,000\n<b> R&D\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    terminal, piped = _Terminal(), io.StringIO()
    for stream in (terminal, piped):
        progress = Progress(4_000_000, stream)
        progress.advance(1_000_000)
        progress.advance(3_000_000)
        progress.done()
    assert piped.getvalue() == ""
    shown = terminal.getvalue()
    assert "[#######                       ]  25% 1.0/4.0 MB" in shown
    assert "100% 4.0/4.0 MB, transcribing... 0 s" in shown
    assert shown.endswith("\r\x1b[K")


def test_progress_goes_on_through_the_decode():
    now = [100.0]
    # the local engine: seconds decoded of the file's duration, while the upload is done
    local = Progress(4_000_000, _Terminal(), duration=200.0, clock=lambda: now[0])
    local.advance(4_000_000)
    local.decoded_to(50.0)
    assert local.line() == f"[{'#' * 7:<30}]  25% decoded 50/200 s, uploaded 4.0/4.0 MB"
    local.decoded_to(200.0)
    assert local.line().startswith(f"[{'#' * 30}] 100% decoded 200/200 s")
    # Deepgram says nothing until it answers: the time it has been working
    remote = Progress(4_000_000, _Terminal(), clock=lambda: now[0])
    remote.advance(4_000_000)
    now[0] += 12
    assert remote.line().endswith("100% 4.0/4.0 MB, transcribing... 12 s")
