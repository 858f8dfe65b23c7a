"""Relative paths in a config are relative to the config file's directory, not the cwd.

A config in /etc/listend that says ``path: samples/door.wav`` means the file next to it,
whoever starts listend from wherever. The loader passes the directory in the validation
context; fields typed :data:`ConfigPath` (and ``$file:`` secrets) resolve against it. Without
a context (a model built in code) a path stays as given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

#: The validation-context key holding the config file's directory.
CONFIG_DIR = "config_dir"


def config_dir(info: ValidationInfo | None) -> Path | None:
    context = info.context if info is not None else None
    if isinstance(context, dict) and context.get(CONFIG_DIR) is not None:
        return Path(context[CONFIG_DIR])
    return None


def relative_to_config(path: Path, info: ValidationInfo | None) -> Path:
    base = config_dir(info)
    path = path.expanduser()
    if base is None or path.is_absolute():
        return path
    return Path(os.path.normpath(base / path))  # no `config/../state` in the logs


#: A path a plugin or the core reads from the config: relative means next to the config file.
ConfigPath = Annotated[Path, AfterValidator(relative_to_config)]
