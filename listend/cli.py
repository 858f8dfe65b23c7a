"""listend: an edge speech-to-text daemon. Audio sources (microphones, files, programs) are
streamed to Deepgram, or to the embedded offline engine, and the transcripts go to sinks (MQTT,
HTTP, files, the terminal, a captions page) through a durable outbox.

Run `listend COMMAND --help` for a command's options; the docs/ pages have the details."""

# This module maps ListendError to one message and its exit code, nothing else.

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from listend import __version__
from listend.daemon.errors import ListendError

log = logging.getLogger("listend")

Command = Callable[[argparse.Namespace], int]


def _load_located(args: argparse.Namespace):  # type: ignore[no-untyped-def]  # noqa: ANN202
    """Config path, plugins (less the disabled ones), config, and where its keys are."""
    from listend.daemon.config.loader import (  # noqa: PLC0415
        find_config,
        parse_config_located,
        read_disabled_plugins,
    )
    from listend.daemon.config.reading import read_config_text  # noqa: PLC0415

    path = find_config(getattr(args, "path", None) or args.config)
    text = read_config_text(path)
    host = _plugins(read_disabled_plugins(text, str(path)))
    return path, host, *parse_config_located(text, str(path), host)


def _plugins(config_disabled: Sequence[str] = ()):  # type: ignore[no-untyped-def]  # noqa: ANN202
    from listend.daemon.plugin.manager import disabled_plugins, load_plugins  # noqa: PLC0415

    return load_plugins(blocked=disabled_plugins(config_disabled))


def cmd_validate(args: argparse.Namespace) -> int:
    from listend.daemon.stream.preflight import check_sources  # noqa: PLC0415

    path, host, config, positions = _load_located(args)
    check_sources(config, host, filename=str(path), positions=positions)
    print(f"{path}: ok ({len(config.sources)} sources, {len(config.sinks)} sinks)")
    if args.show:
        import yaml  # noqa: PLC0415

        print(yaml.safe_dump(config.shown(), sort_keys=False), end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from listend.daemon.config.loader import load_config  # noqa: PLC0415
    from listend.daemon.service.daemon import Daemon  # noqa: PLC0415
    from listend.daemon.service.logs import set_level, setup_logging  # noqa: PLC0415
    from listend.daemon.service.sdnotify import Notifier  # noqa: PLC0415
    from listend.daemon.service.signals import run_daemon  # noqa: PLC0415
    from listend.daemon.stream.preflight import check_sources  # noqa: PLC0415
    from listend.engine.embedded import embedded_engine  # noqa: PLC0415

    notifier = Notifier()  # before anything can spawn a process that inherits NOTIFY_SOCKET
    path, host, config, positions = _load_located(args)
    # the same checks as `validate`, so a bad setting is reported at its line, exit 78
    check_sources(config, host, filename=str(path), positions=positions)
    setup_logging(args.log_level or config.log.level)
    log.info("listend %s starting with %s", __version__, path)
    daemon = Daemon(
        config,
        host,
        reload_config=lambda: load_config(path, host),
        notifier=notifier,
        on_reloaded=None if args.log_level else lambda new: set_level(new.log.level),
        local_engine=embedded_engine,  # the core knows only the interface
    )
    return asyncio.run(run_daemon(daemon))


def cmd_schema(_args: argparse.Namespace) -> int:
    from listend.daemon.config.schema import config_schema  # noqa: PLC0415

    print(json.dumps(config_schema(_plugins()), indent=2))
    return 0


def _engine_line() -> str:
    from listend.engine.choice import describe  # noqa: PLC0415 - numpy: only when asked

    return f"offline engine: {describe()}"


def cmd_plugins(_args: argparse.Namespace) -> int:
    host = _plugins()
    print(_engine_line())
    for info in sorted(host.infos, key=lambda i: i.name):
        version = f" {info.version}" if info.version else ""
        print(f"{info.name}  ({info.package}{version})")
        for kind, names in (("source", info.source_types), ("sink", info.sink_types)):
            for name in names:
                print(f"    {kind}: {name}")
    for broken in sorted(host.broken, key=lambda b: b.name):
        version = f" {broken.version}" if broken.version else ""
        print(f"{broken.name}  ({broken.package}{version})  BROKEN: {broken.reason}")
    for name in sorted(host.disabled):
        print(f"{name}  (disabled)")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from listend.transcribe import run  # noqa: PLC0415

    logging.basicConfig(level=(args.log_level or "warning").upper(), format="listend: %(message)s")
    return run(args)


def cmd_devices(args: argparse.Namespace) -> int:
    from listend.plugins import portaudio  # noqa: PLC0415

    devices = portaudio.list_input_devices()
    if args.json:
        print(json.dumps(portaudio.devices_as_json(devices), indent=2))
    elif devices:
        print(portaudio.format_devices(devices))
    else:
        print("no audio input devices found", file=sys.stderr)
    return 0


def cmd_manpage(_args: argparse.Namespace) -> int:
    from listend.manual import manpage  # noqa: PLC0415

    print(manpage(build_parser()), end="")
    return 0


def cmd_completion(_args: argparse.Namespace) -> int:
    from listend.manual import bash_completion  # noqa: PLC0415

    print(bash_completion(build_parser()), end="")
    return 0


def versions() -> str:
    """listend, and what decides its behaviour: the Deepgram SDK and the offline engine."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    lines = [f"listend {__version__}"]
    for label, package in (
        ("deepgram-sdk", "deepgram-sdk"),
        ("engine: pocketsphinx", "pocketsphinx"),
    ):
        try:
            lines.append(f"{label} {version(package)}")
        except PackageNotFoundError:
            lines.append(f"{label} (not installed)")
    lines.append(_engine_line())
    lines.append(f"python {sys.version.split()[0]}")
    return "\n".join(lines)


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help")))

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        print(versions())
        parser.exit()


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options every command takes, before or after its name (``validate --log-level debug``)."""
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=None if top else argparse.SUPPRESS,
        help="log verbosity; overrides the config's log.level",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listend",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action=_Version, help="print the versions of listend, the SDK and the engine"
    )
    _global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Command, help_text: str, *, config: bool = False
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, top=False)
        sub.set_defaults(func=func)
        if config:
            help_config = "config file (default: $LISTEND_CONFIG, then /etc/listend/listend.yaml)"
            sub.add_argument("path", nargs="?", help=help_config)
            sub.add_argument("-c", "--config", help=help_config)
        return sub

    add("run", cmd_run, "run the daemon", config=True)
    validate = add("validate", cmd_validate, "check a config file; exit 78 if invalid", config=True)
    validate.add_argument(
        "--show", action="store_true", help="print the parsed config (secrets as references)"
    )
    add("schema", cmd_schema, "print the JSON Schema of the config, including plugin options")
    add("plugins", cmd_plugins, "list installed plugins and the types they provide")
    from listend.transcribe import add_arguments  # noqa: PLC0415

    add_arguments(add("transcribe", cmd_transcribe, "transcribe a file or URL once"))
    devices = add("devices", cmd_devices, "list audio input devices (for microphone sources)")
    devices.add_argument("--json", action="store_true", help="print a JSON array")
    add(
        "manpage",
        cmd_manpage,
        "print the listend(1) man page (roff), generated from these help texts",
    )
    completion = add("completion", cmd_completion, "print a shell completion script")
    completion.add_argument("shell", choices=["bash"], help="the shell to complete for")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_level and args.command != "run":
        logging.basicConfig(level=args.log_level.upper())
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except ListendError as exc:
        print(f"listend: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `listend schema | head`: the reader is gone, which is not an error worth a traceback.
        # Point stdout at /dev/null so the flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by it
    return result
