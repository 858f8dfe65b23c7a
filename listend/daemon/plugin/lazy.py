"""Source and sink types whose module is imported when a config first uses them.

A plugin's entry point may name a light module that registers these stand-ins instead of its
classes (the built-ins do: ``listend/plugins/builtin.py``). A daemon then imports only the
modules of the types its config names (each unused built-in costs 0.1-0.3 MB of RSS, with
what it imports): the stand-in's ``config_model`` and building one (``cls(name, config,
context)``, which returns the real class's instance) import the real class.
"""

from __future__ import annotations

import importlib
from abc import ABCMeta
from typing import Any, cast

from listend.daemon.errors import PluginError
from listend.daemon.plugin.sink import Sink
from listend.daemon.plugin.source import Source


class _Deferred(ABCMeta):
    """The stand-in's metaclass: a data descriptor here wins over ``Sink.config_model``."""

    type_name: str
    _target: str
    _real: type[Any] | None

    def real(cls) -> type[Any]:
        """The class the stand-in stands for, imported on first use."""
        if cls._real is None:
            module, _, name = cls._target.partition(":")
            real = getattr(importlib.import_module(module), name)
            base = cls.__mro__[1]  # Source or Sink
            if not (isinstance(real, type) and issubclass(real, base)) or (
                getattr(real, "type_name", None) != cls.type_name
            ):
                msg = (
                    f"{cls._target} is not the {base.__name__.lower()} type "
                    f"{cls.type_name!r} it was registered as"
                )
                raise PluginError(msg)
            cls._real = real
        return cls._real

    @property
    def config_model(cls) -> Any:
        return cls.real().config_model


def _build(cls: Any, *args: Any, **kwargs: Any) -> Any:
    return cls.real()(*args, **kwargs)


def _deferred(base: type[Any], type_name: str, target: str) -> type[Any]:
    namespace = {
        "__module__": target.partition(":")[0],  # where it is defined, for `listend plugins`
        "__qualname__": f"{target.partition(':')[2]} (imported on first use)",
        "__doc__": f"the {type_name!r} type of {target}, imported on first use",
        "__new__": _build,
        "type_name": type_name,
        "_target": target,
        "_real": None,
    }
    return _Deferred(f"Deferred{base.__name__}[{type_name}]", (base,), namespace)


def lazy_source(type_name: str, target: str) -> type[Source]:
    """A source type named ``type_name`` whose class is ``target`` (``"package.module:Class"``),
    imported on first use."""
    return cast("type[Source]", _deferred(Source, type_name, target))


def lazy_sink(type_name: str, target: str) -> type[Sink]:
    """A sink type named ``type_name`` whose class is ``target``, imported on first use."""
    return cast("type[Sink]", _deferred(Sink, type_name, target))


__all__ = ["lazy_sink", "lazy_source"]
