"""Secret references: ``$env:NAME``, ``$file:/path``, ``$credential:NAME``.

The config holds the reference; the value is read when the config is validated and is only
reachable through :meth:`Secret.reveal`. ``repr``/``str`` show the reference, never the value.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from listend.daemon.config.paths import config_dir


class SecretResolutionError(ValueError):
    """A reference that cannot be read; the message never contains the secret."""


class Secret:
    """A resolved secret that remembers where it came from."""

    __slots__ = ("_value", "reference")

    def __init__(self, reference: str, value: str) -> None:
        self.reference = reference
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"

    def __str__(self) -> str:
        return self.reference

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.reference, self._value) == (
            other.reference,
            other._value,
        )

    def __hash__(self) -> int:
        return hash(self.reference)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda secret: secret.reference, return_schema=core_schema.str_schema()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": r"^\$(env|file|credential):.+",
            "description": "secret reference: $env:NAME, $file:/path or $credential:NAME",
        }


def resolve_secret(
    reference: str,
    environ: os._Environ[str] | dict[str, str] | None = None,
    base: Path | None = None,
) -> Secret:
    """The value ``reference`` points at; a relative ``$file:`` path is relative to ``base``."""
    env = os.environ if environ is None else environ
    if reference.startswith("$env:"):
        name = reference.removeprefix("$env:")
        if name not in env:
            raise SecretResolutionError(f"environment variable {name} is not set")
        return Secret(reference, env[name])
    if reference.startswith("$file:"):
        path = Path(reference.removeprefix("$file:")).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return Secret(reference, _read(path))
    if reference.startswith("$credential:"):
        name = reference.removeprefix("$credential:")
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            msg = f"credential {name}: $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)"
            raise SecretResolutionError(msg)
        return Secret(reference, _read(Path(directory) / name))
    msg = "expected a secret reference ($env:NAME, $file:/path or $credential:NAME), not a literal"
    raise SecretResolutionError(msg)


#: Longest secret file read: keys and tokens are short; /dev/zero must not fill the memory.
MAX_SECRET_BYTES = 64 * 1024


def default_credential(name: str) -> str | None:
    """The systemd credential ``name`` if the service was given one, else None.

    The installer stores the key as a credential; a config that leaves ``api_key`` out then
    works with the key and without it (the local engine), with no edit in between.
    """
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    try:
        return (Path(directory) / name).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _read(path: Path) -> str:
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
        data = _head(path, MAX_SECRET_BYTES + 1) if regular else b""
    except OSError as exc:
        raise SecretResolutionError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # a NUL byte in the path
        raise SecretResolutionError(f"cannot read {str(path)!r}: {exc}") from None
    if not regular:
        raise SecretResolutionError(f"{path} is not a regular file")
    if len(data) > MAX_SECRET_BYTES:
        raise SecretResolutionError(f"{path} is larger than {MAX_SECRET_BYTES // 1024} kB")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretResolutionError(f"{path} is not UTF-8 text") from None


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as file:
        return file.read(size)


def _validate(value: Any, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise SecretResolutionError("expected a secret reference string")
    return resolve_secret(value, base=config_dir(info))


#: Field type for secrets in config models (plugins use it too).
SecretRef = Secret
