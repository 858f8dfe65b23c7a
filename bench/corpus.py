"""The fixed utterances the local engine is measured on (espeak-ng speech, en-us, 160 wpm)."""

from __future__ import annotations

SENTENCES = (
    "turn on the kitchen lights",
    "what is the weather like today",
    "please open the garden window",
    "set a timer for ten minutes",
    "the meeting starts at nine in the morning",
    "call my brother on his mobile phone",
    "play some music in the living room",
    "how long does it take to drive to the airport",
    "remind me to buy milk and bread",
    "the train to london leaves from platform four",
    "can you tell me a joke",
    "switch off the heating in the bedroom",
    "what time is it in new york",
    "add eggs to the shopping list",
    "the library closes at six on saturday",
    "show me the news headlines",
    "lock the front door",
    "how many people live in canada",
    "turn the volume down a little",
    "book a table for two at eight tonight",
)

#: Phrases boosted with ``keyterm`` in the "with keywords" runs: one per sentence that has a
#: distinctive phrase, as a kiosk would configure its own vocabulary.
KEYTERMS = (
    "kitchen lights",
    "garden window",
    "timer",
    "brother",
    "living room",
    "airport",
    "milk and bread",
    "platform four",
    "heating",
    "new york",
    "shopping list",
    "saturday",
    "news headlines",
    "front door",
    "canada",
    "volume",
    "table for two",
)
