"""The ``triggers:`` options (global and per source): named phrases that raise ``phrase`` events.

They live beside the stream options because a source may add or override them; the matching
itself is :mod:`listend.daemon.stream.triggers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from listend.daemon.plugin.stream_options import StreamOptions

#: The suggested ``fuzzy`` threshold: tolerates one wrong letter in a ten-letter phrase.
SUGGESTED_FUZZY = 0.85


class TriggerConfig(BaseModel):
    """One trigger: phrases (matched on normalised words), a regular expression, or both."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="false: a source turns a global one off")
    phrases: list[str] = Field(
        default_factory=list,
        description="phrases matched on whole words, ignoring case and punctuation; numerals "
        "as the stream gives them ('10', not 'ten', with smart_format)",
    )
    regex: str | None = Field(
        default=None,
        description="Python regular expression searched in the normalised text (lower case, "
        "words separated by single spaces)",
    )
    fuzzy: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="also match phrases whose letters are this similar (0-1, difflib ratio of "
        f"the same number of words; {SUGGESTED_FUZZY} suggested); unset: exact words only",
    )
    boost: bool = Field(
        default=True,
        description="add the phrases to the stream's keyterm (Nova-3, Flux) or keywords "
        "(older models) so the engine favours them",
    )

    @field_validator("phrases")
    @classmethod
    def _phrases(cls, value: list[str]) -> list[str]:
        if any(not normalise(phrase) for phrase in value):
            raise ValueError("a phrase needs at least one word")
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _something_to_match(self) -> TriggerConfig:
        if not self.phrases and self.regex is None:
            raise ValueError("set phrases, regex or both")
        return self


_NOT_WORD = re.compile(r"[^\w']+")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def check_trigger_names(triggers: dict[str, TriggerConfig]) -> dict[str, TriggerConfig]:
    """Trigger names end up in MQTT topics and Home Assistant event types."""
    for name in triggers:
        if not _NAME.match(name):
            msg = f"trigger names are letters, digits, '_' or '-' only, found {name!r}"
            raise ValueError(msg)
    return triggers


def normalise(text: str) -> list[str]:
    """``"Call the Front-Desk!"`` -> ``["call", "the", "front", "desk"]``."""
    words = (word.strip("'") for word in _NOT_WORD.split(text.lower()))
    return [word for word in words if word]


def boosted(options: StreamOptions, configs: Mapping[str, TriggerConfig]) -> StreamOptions:
    """``options`` with the trigger phrases added to keyterm (Nova-3, Flux) or keywords."""
    phrases = [p for c in configs.values() if c.enabled and c.boost for p in c.phrases]
    if not phrases:
        return options
    model = options.model or ""
    key = "keyterm" if model.startswith(("nova-3", "flux")) else "keywords"
    have: list[str] = list(getattr(options, key) or [])
    added = [p for p in dict.fromkeys(phrases) if p not in have]
    return options.model_copy(update={key: have + added}) if added else options
