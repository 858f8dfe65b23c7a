"""The one error type users see: handled, printed as one message, mapped to an exit code."""

from __future__ import annotations

EX_SOFTWARE = 70
EX_NOPERM = 77
EX_CONFIG = 78


class ListendError(Exception):
    """An error the user can act on: the CLI prints its message, no traceback."""

    exit_code: int = 1


class ConfigError(ListendError):
    """The configuration is invalid; exits 78 so systemd does not restart-loop."""

    exit_code = EX_CONFIG


class PluginError(ConfigError):
    """A plugin failed to load or registered something inconsistent."""


class AuthError(ListendError):
    """Deepgram refused our credentials; retrying will not help."""

    exit_code = EX_NOPERM
