"""Plugin manager factory and the typed registries built from it.

There is no global manager: each caller (CLI command, test) builds its own with
:func:`load_plugins`, as pluggy's eggsample and tox 4 do.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import pluggy

from listend.daemon.errors import PluginError
from listend.daemon.plugin import hookspecs

if TYPE_CHECKING:
    from listend.daemon.plugin.sink import Sink
    from listend.daemon.plugin.source import Source

log = logging.getLogger(__name__)

T = TypeVar("T", "type[Source]", "type[Sink]")


@dataclass(frozen=True)
class PluginInfo:
    """What ``listend plugins`` shows for one loaded plugin."""

    name: str
    package: str
    version: str
    source_types: tuple[str, ...] = ()
    sink_types: tuple[str, ...] = ()


class TypeRegistry(Generic[T]):
    """Classes keyed by ``type_name``; a duplicate name is a user error naming both plugins."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, T] = {}
        self._owners: dict[str, str] = {}

    def add(self, cls: T, owner: str) -> None:
        name = getattr(cls, "type_name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {owner!r} registered {cls!r} without a type_name")
        if name in self._classes:
            msg = (
                f"{self.kind} type {name!r} is registered twice: by plugin "
                f"{self._owners[name]!r} and by plugin {owner!r}"
            )
            raise PluginError(msg)
        self._classes[name] = cls
        self._owners[name] = owner

    def get(self, name: str) -> T | None:
        return self._classes.get(name)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._classes.items())

    def owner(self, name: str) -> str:
        return self._owners[name]


@dataclass
class PluginHost:
    """The loaded plugins and the source/sink types they registered."""

    manager: pluggy.PluginManager
    sources: TypeRegistry[type[Source]] = field(default_factory=lambda: TypeRegistry("source"))
    sinks: TypeRegistry[type[Sink]] = field(default_factory=lambda: TypeRegistry("sink"))
    infos: list[PluginInfo] = field(default_factory=list)


def load_plugins(
    *, blocked: Iterable[str] = (), extra: Iterable[object] = (), entry_points: bool = True
) -> PluginHost:
    """Build a plugin manager, load the ``listend`` entry points and collect their types.

    ``extra`` registers plugin objects directly (tests); ``blocked`` names entry points to skip.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name in blocked:
        manager.set_blocked(name)
    dists: dict[str, tuple[str, str]] = {}
    if entry_points:
        dists = _load_entry_points(manager)
    for plugin in extra:
        manager.register(plugin)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        msg = f"a plugin implements a hook listend does not define: {exc}"
        raise PluginError(msg) from exc
    host = PluginHost(manager=manager)
    for name, plugin in manager.list_name_plugin():
        if plugin is None:  # blocked
            continue
        package, version = dists.get(name, ("(registered directly)", ""))
        _collect(host, name, plugin, package, version)
    return host


def _load_entry_points(manager: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    """Load entry points one at a time, so a broken third-party plugin is named in the error."""
    dists: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != hookspecs.PROJECT_NAME or manager.is_blocked(ep.name):
                continue
            if manager.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                package = dist.metadata["name"]
                msg = f"plugin {ep.name!r} from package {package!r} failed to load: {exc!r}"
                raise PluginError(msg) from exc
            try:
                manager.register(plugin, name=ep.name)
            except ValueError:
                continue  # the same module registered under another entry point name
            except pluggy.PluginValidationError as exc:
                package = dist.metadata["name"]
                raise PluginError(f"plugin {ep.name!r} from {package!r} is invalid: {exc}") from exc
            dists[ep.name] = (dist.metadata["name"], dist.version)
    return dists


def _collect(host: PluginHost, name: str, plugin: object, package: str, version: str) -> None:
    sources: list[str] = []
    sinks: list[str] = []

    def register_source(cls: type[Source]) -> None:
        host.sources.add(cls, name)
        sources.append(cls.type_name)

    def register_sink(cls: type[Sink]) -> None:
        host.sinks.add(cls, name)
        sinks.append(cls.type_name)

    caller = host.manager.subset_hook_caller
    others = [p for p in host.manager.get_plugins() if p is not plugin]
    try:
        caller("register_source_types", others)(register=register_source)
        caller("register_sink_types", others)(register=register_sink)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {name!r} failed while registering its types: {exc!r}") from exc
    host.infos.append(PluginInfo(name, package, version, tuple(sources), tuple(sinks)))
    log.debug("plugin %s: sources=%s sinks=%s", name, sources, sinks)
