"""The field a validation error's location names, for messages that say what is allowed."""

from __future__ import annotations

import types
import typing
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys of the model at ``loc`` (empty if ``loc`` is not a model)."""
    current = _unwrap(_annotation_at(model, loc))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def allowed_range(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``"; allowed: 0 < value <= 60"`` for the bounded number at ``loc``, else ``""``.

    Pydantic names only the bound that was crossed; the whole range tells the user what to
    write instead (and that ``1e999``, read by YAML as infinity, is not a duration).
    """
    field = _field_at(model, loc)
    if field is None:
        return ""
    low = high = ""
    for item in field.metadata:
        if isinstance(item, annotated_types.Gt):
            low = f"{item.gt} < "
        elif isinstance(item, annotated_types.Ge):
            low = f"{item.ge} <= "
        elif isinstance(item, annotated_types.Lt):
            high = f" < {item.lt}"
        elif isinstance(item, annotated_types.Le):
            high = f" <= {item.le}"
    return f"; allowed: {low}value{high}" if low or high else ""


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    if not loc:
        return None
    parent = _unwrap(_annotation_at(model, loc[:-1]))
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        return parent.model_fields.get(str(loc[-1]))
    return None


def _annotation_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field else None
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
    return current


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    if origin is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation
