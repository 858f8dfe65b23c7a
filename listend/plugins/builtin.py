"""The built-in plugins' entry points: each registers its types as stand-ins
(:func:`listend.api.lazy_source`, :func:`~listend.api.lazy_sink`), so a daemon imports the
module of a built-in type only when its config uses it (``listend run`` with a file source and
an mqtt sink never imports the captions page, the microphone, the http sink or the history
store).
"""

from __future__ import annotations

from listend.api import RegisterSink, RegisterSource, hookimpl, lazy_sink, lazy_source


class _Builtin:
    """One built-in plugin: ``(type_name, "module:Class")`` pairs of its types."""

    def __init__(
        self, sources: tuple[tuple[str, str], ...] = (), sinks: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._sources = sources
        self._sinks = sinks

    @hookimpl
    def register_source_types(self, register: RegisterSource) -> None:
        for type_name, target in self._sources:
            register(lazy_source(type_name, target))

    @hookimpl
    def register_sink_types(self, register: RegisterSink) -> None:
        for type_name, target in self._sinks:
            register(lazy_sink(type_name, target))


_P = "listend.plugins."
file_source = _Builtin(sources=(("file", _P + "file_source:FileSource"),))
microphone = _Builtin(sources=(("microphone", _P + "microphone:MicrophoneSource"),))
command_source = _Builtin(sources=(("command", _P + "command_source:CommandSource"),))
stdout_sink = _Builtin(sinks=(("stdout", _P + "stdout_sink:StdoutSink"),))
mqtt_sink = _Builtin(sinks=(("mqtt", _P + "mqtt_sink:MqttSink"),))
http_sink = _Builtin(sinks=(("http", _P + "http_sink:HttpSink"),))
file_sink = _Builtin(sinks=(("file", _P + "file_sink:FileSink"),))
captions_sink = _Builtin(sinks=(("captions", _P + "captions_sink:CaptionsSink"),))
history_sink = _Builtin(sinks=(("history", _P + "history_sink:HistorySink"),))
