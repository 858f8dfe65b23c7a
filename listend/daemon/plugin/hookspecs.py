"""The hooks a listend plugin implements.

Every hook is ``register_*(register)``: the host hands the plugin a callable and the plugin
calls it with its classes, so plugins never touch host internals. Built-in plugins use these
same hooks through the same ``listend`` entry-point group as third-party packages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from listend.daemon.plugin.sink import Sink
    from listend.daemon.plugin.source import Source

PROJECT_NAME = "listend"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

RegisterSource = Callable[["type[Source]"], None]
RegisterSink = Callable[["type[Sink]"], None]


@hookspec
def register_source_types(register: RegisterSource) -> None:
    """Register audio source classes.

    :param register: call it once per :class:`listend.api.Source` subclass. The
        class's ``type_name`` is the ``type:`` users write in YAML and its ``config_model`` (a
        pydantic model forbidding unknown keys) validates that source's options.
    :return: nothing; registration happens through ``register``.
    """


@hookspec
def register_sink_types(register: RegisterSink) -> None:
    """Register transcript sink classes.

    :param register: call it once per :class:`listend.api.Sink` subclass, keyed by
        its ``type_name``, validated by its ``config_model``.
    :return: nothing; registration happens through ``register``.
    """


__all__ = ["hookimpl", "hookspec", "register_sink_types", "register_source_types"]
