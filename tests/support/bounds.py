"""Every number a config may set, found by walking the config models (for bounds checks)."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

import annotated_types
from pydantic import BaseModel

from listend.daemon.config.models import ListendConfig
from listend.daemon.plugin.manager import PluginHost


def config_models(host: PluginHost) -> list[type[BaseModel]]:
    roots: list[type[BaseModel]] = [ListendConfig]
    roots += [cls.config_model for _, cls in host.sources.items()]
    roots += [cls.config_model for _, cls in host.sinks.items()]
    return roots


def numeric_fields(
    model: type[BaseModel], seen: set[type] | None = None
) -> Iterator[tuple[str, list[Any]]]:
    """(``Model.field``, its constraints) for every int or float a config can set."""
    seen = set() if seen is None else seen
    if model in seen:
        return
    seen.add(model)
    for name, field in model.model_fields.items():
        for kind, metadata in _leaf_types(field.annotation, list(field.metadata)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from numeric_fields(kind, seen)
            elif kind in (int, float):
                yield f"{model.__name__}.{name}", metadata


def has_upper_bound(metadata: list[Any]) -> bool:
    return any(isinstance(m, annotated_types.Le | annotated_types.Lt) for m in metadata)


def _leaf_types(annotation: Any, metadata: list[Any]) -> Iterator[tuple[Any, list[Any]]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        for item in extra:
            metadata = [*metadata, *getattr(item, "metadata", [item])]
        yield from _leaf_types(inner, metadata)
    elif origin in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in typing.get_args(annotation):
            yield from _leaf_types(arg, metadata)
    else:
        yield annotation, metadata
