"""The man page and the bash completion, generated from the argument parser.

Generated rather than written so that neither can drift from the commands: the installer
writes both from the installed ``listend`` (``listend manpage``, ``listend completion bash``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex

from listend import __version__

_EXIT_STATUS = (
    ("0", "ok (also a clean stop on SIGTERM or Ctrl-C)"),
    ("1", "another handled error, printed as one line"),
    ("2", "wrong command-line usage"),
    ("77", "Deepgram refused the credentials (systemd does not restart on it)"),
    ("78", "invalid configuration or plugin, EX_CONFIG (systemd does not restart on it)"),
    ("130", "a one-shot command interrupted with Ctrl-C"),
)
_FILES = (
    (
        "/etc/listend/listend.yaml",
        "the config file when none is given and $LISTEND_CONFIG is unset",
    ),
    ("/var/lib/listend", "the service's state: outboxes, transcripts ($STATE_DIRECTORY)"),
    (
        "/etc/credstore/deepgram",
        (
            "the Deepgram API key as a systemd credential (or encrypted, "
            "in /etc/credstore.encrypted/deepgram)"
        ),
    ),
)


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers, by name, in the order they were added."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions  # noqa: SLF001
        if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)  # noqa: SLF001
        and a.help != argparse.SUPPRESS
    ]


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines()
    )


def _signature(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{_roff(action.metavar or action.dest)}\\fR"  # type: ignore[arg-type]
    names = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices is not None:
        value = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        value = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return f"{names} \\fI{_roff(value)}\\fR"


def _option_items(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> list[str]:
    lines: list[str] = []
    for action in _options(parser):
        if action.dest not in skip:
            lines += [".TP", _signature(action), _roff(action.help or "")]
    return lines


def manpage(parser: argparse.ArgumentParser) -> str:
    """``listend(1)`` in roff (man -l to read it without installing)."""
    date = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d")
    lines = [
        f'.TH LISTEND 1 "{date}" "listend {__version__}" "User Commands"',
        ".SH NAME",
        "listend \\- edge speech\\-to\\-text daemon",
        ".SH SYNOPSIS",
        ".B listend",
        "[\\fB\\-\\-log\\-level\\fR \\fILEVEL\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        _roff(parser.description or ""),
        ".SH OPTIONS",
        "These work before or after the command.",
        *_option_items(parser),
        ".SH COMMANDS",
    ]
    shared = frozenset(a.dest for a in _options(parser))
    for name, sub in commands(parser).items():
        usage = sub.format_usage().removeprefix("usage: ").strip()
        lines += [f'.SS "{_roff(name)}"', ".nf", _roff(usage), ".fi", _roff(sub.description or "")]
        lines += _option_items(sub, shared)
    lines += [".SH EXIT STATUS"]
    for code, meaning in _EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines += [".SH FILES"]
    for path, meaning in _FILES:
        lines += [".TP", f"\\fI{_roff(path)}\\fR", _roff(meaning)]
    lines += [
        ".SH SEE ALSO",
        (
            "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), \\fBsystemd\\-creds\\fR(1); the docs/ "
            "directory of the listend repository."
        ),
    ]
    return "\n".join(lines) + "\n"


def _words(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in _options(parser) for o in a.option_strings]


def _value_cases(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``case`` patterns -> compgen arguments for options that take a value."""
    cases: dict[str, str] = {}
    for action in _options(parser):
        if not action.option_strings or action.nargs == 0:
            continue
        pattern = "|".join(action.option_strings)
        if action.choices is not None:
            words = " ".join(str(c) for c in action.choices)
            cases[pattern] = f"-W {shlex.quote(words)}"
        elif action.metavar in {"URL", "VALUE", "VERSION", "SECONDS"} or action.type in {
            int,
            float,
        }:
            cases[pattern] = ""  # a free value: offer nothing
        else:
            cases[pattern] = "-f"
    return cases


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``listend`` (commands, options, their choices, files)."""
    subs = commands(parser)
    all_cases: dict[str, str] = _value_cases(parser)
    for sub in subs.values():
        all_cases.update(_value_cases(sub))
    out = [
        "# bash completion for listend, generated by `listend completion bash`",
        "_listend() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local cmd="" i opts',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        (
            f'        case "${{COMP_WORDS[i]}}" in {"|".join(subs)}) cmd="${{COMP_WORDS[i]}}"; '
            "break ;; esac"
        ),
        "    done",
        '    case "$prev" in',
    ]
    for pattern, compgen in all_cases.items():
        if compgen:
            out.append(f'        {pattern}) COMPREPLY=($(compgen {compgen} -- "$cur")); return ;;')
        else:
            out.append(f"        {pattern}) COMPREPLY=(); return ;;")
    out += ["    esac", '    case "$cmd" in']
    global_words = _words(parser)
    out.append(f'        "") opts={shlex.quote(" ".join([*global_words, *subs]))} ;;')
    for name, sub in subs.items():
        out.append(
            f"        {name}) opts={shlex.quote(' '.join([*_words(sub), *global_words]))} ;;"
        )
    out += [
        "    esac",
        '    if [[ -z "$cmd" || "$cur" == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        "    else",
        '        COMPREPLY=($(compgen -f -- "$cur"))',
        "    fi",
        "}",
        "complete -o filenames -F _listend listend",
    ]
    return "\n".join(out) + "\n"
