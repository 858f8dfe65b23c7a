"""Plugin manager factory and the typed registries built from it.

There is no global manager: each caller (CLI command, test) builds its own with
:func:`load_plugins`, as pluggy's eggsample and tox 4 do. Plugins named in
``$LISTEND_DISABLED_PLUGINS`` or the config's ``plugins.disabled`` are not imported (pluggy's
``set_blocked``), and one that fails to import is skipped with a warning, so a broken
third-party plugin only breaks the configs that use its types.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from listend.daemon.errors import PluginError
from listend.daemon.plugin import hookspecs

if TYPE_CHECKING:
    from listend.daemon.plugin.sink import Sink
    from listend.daemon.plugin.source import Source

log = logging.getLogger(__name__)

DISABLED_ENV = "LISTEND_DISABLED_PLUGINS"

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


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that failed to import or to register: reported, skipped, listed by ``plugins``.

    ``source_types``/``sink_types`` are the types it registered before failing, if any.
    """

    name: str
    package: str
    version: str
    reason: str
    source_types: tuple[str, ...] = ()
    sink_types: tuple[str, ...] = ()


@dataclass
class PluginHost:
    """The loaded plugins and the source/sink types they registered."""

    manager: pluggy.PluginManager
    sources: TypeRegistry[type[Source]] = field(default_factory=lambda: TypeRegistry("source"))
    sinks: TypeRegistry[type[Sink]] = field(default_factory=lambda: TypeRegistry("sink"))
    infos: list[PluginInfo] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)

    def why_unavailable(self, kind: str, type_name: str) -> str:
        """A hint for a config naming a type no loaded plugin provides (empty if none)."""
        for plugin in self.broken:
            types = plugin.source_types if kind == "source" else plugin.sink_types
            if type_name in types:
                return (
                    f"; it is provided by plugin {plugin.name!r} from package "
                    f"{plugin.package!r}, which failed to load: {plugin.reason}"
                )
        hints = [
            f"{p.name!r} from package {p.package!r} (failed to load: {p.reason})"
            for p in self.broken
        ]
        hints += [f"{name!r} (disabled)" for name in self.disabled]
        return f"; plugins not loaded that may provide it: {', '.join(hints)}" if hints else ""


def disabled_plugins(config_names: Iterable[str] = ()) -> list[str]:
    """``$LISTEND_DISABLED_PLUGINS`` (comma-separated) plus the config's ``plugins.disabled``."""
    from_env = os.environ.get(DISABLED_ENV, "").split(",")
    names = [name.strip() for name in (*from_env, *config_names)]
    return list(dict.fromkeys(name for name in names if name))


def load_plugins(
    *, blocked: Iterable[str] = (), extra: Iterable[object] = (), entry_points: bool = True
) -> PluginHost:
    """Build a plugin manager, load the ``listend`` entry points and collect their types.

    ``extra`` registers plugin objects directly (tests); ``blocked`` names entry points to skip
    (see :func:`disabled_plugins`). A plugin that fails to import or register is logged once as
    a warning and kept in :attr:`PluginHost.broken`; the others still load.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    blocked = list(blocked)
    for name in blocked:
        manager.set_blocked(name)
    host = PluginHost(manager=manager)
    dists: dict[str, tuple[str, str]] = {}
    if entry_points:
        dists = _load_entry_points(host)
        _warn_unknown_blocked(host, blocked)
    for plugin in extra:
        manager.register(plugin)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        msg = f"a plugin implements a hook listend does not define: {exc}"
        raise PluginError(msg) from exc
    for name, plugin in manager.list_name_plugin():
        if plugin is None:  # blocked
            continue
        package, version = dists.get(name, ("(registered directly)", ""))
        _collect(host, name, plugin, package, version)
    return host


def _load_entry_points(host: PluginHost) -> dict[str, tuple[str, str]]:
    """Load entry points one at a time, so a broken plugin is named and the others still load."""
    dists: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != hookspecs.PROJECT_NAME:
                continue
            if host.manager.is_blocked(ep.name):
                if ep.name not in host.disabled:
                    host.disabled.append(ep.name)
                continue
            if host.manager.get_plugin(ep.name) is not None:
                continue
            package, version = dist.metadata["name"], dist.version
            why = _register_entry_point(host.manager, ep)
            if why is None:
                dists[ep.name] = (package, version)
            elif why:
                _broken(host, BrokenPlugin(ep.name, package, version, why))
    return dists


def _register_entry_point(
    manager: pluggy.PluginManager, ep: importlib.metadata.EntryPoint
) -> str | None:
    """Import and register one plugin: None if it is in, else why not ("" if a duplicate)."""
    try:
        plugin = ep.load()
    except Exception as exc:  # any import-time error: report it, load the others
        return _reason(exc)
    try:
        manager.register(plugin, name=ep.name)
    except ValueError:
        return ""  # the same module registered under another entry point name
    except pluggy.PluginValidationError as exc:
        return f"invalid: {exc}"
    unknown = _unknown_hooks(manager, plugin)
    if unknown:
        manager.unregister(plugin)
        return f"implements hooks listend does not define: {', '.join(unknown)}"
    return None


def _unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    return [
        caller.name
        for caller in manager.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
    ]


def _warn_unknown_blocked(host: PluginHost, blocked: list[str]) -> None:
    for name in blocked:
        if name not in host.disabled:
            log.warning("plugin %r is disabled but no installed plugin has that name", name)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _broken(host: PluginHost, plugin: BrokenPlugin) -> None:
    host.broken.append(plugin)
    log.warning(
        "plugin %r from package %r failed to load: %s; its types are unavailable "
        "(uninstall it, or disable it with $%s or the config's plugins.disabled)",
        plugin.name,
        plugin.package,
        plugin.reason,
        DISABLED_ENV,
    )


def _collect(host: PluginHost, name: str, plugin: object, package: str, version: str) -> None:
    """Ask one plugin for its types; add them only if it registers without failing."""
    found: dict[str, list[type[Any]]] = {"source": [], "sink": []}

    def register(kind: str) -> Callable[[type[Any]], None]:
        def add(cls: type[Any]) -> None:
            type_name = getattr(cls, "type_name", None)
            if not isinstance(type_name, str) or not type_name:
                raise PluginError(f"it registered {cls!r} without a type_name")
            found[kind].append(cls)

        return add

    caller = host.manager.subset_hook_caller
    others = [p for p in host.manager.get_plugins() if p is not plugin]
    try:
        caller("register_source_types", others)(register=register("source"))
        caller("register_sink_types", others)(register=register("sink"))
    except Exception as exc:  # a plugin's bug: report it, skip the plugin
        host.manager.unregister(plugin)
        sources = tuple(c.type_name for c in found["source"])
        sinks = tuple(c.type_name for c in found["sink"])
        reason = f"while registering its types: {_reason(exc)}"
        _broken(host, BrokenPlugin(name, package, version, reason, sources, sinks))
        return
    for cls in found["source"]:
        host.sources.add(cls, name)
    for cls in found["sink"]:
        host.sinks.add(cls, name)
    sources = tuple(c.type_name for c in found["source"])
    sinks = tuple(c.type_name for c in found["sink"])
    host.infos.append(PluginInfo(name, package, version, sources, sinks))
    log.debug("plugin %s: sources=%s sinks=%s", name, sources, sinks)
