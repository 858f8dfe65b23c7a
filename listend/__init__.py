"""listend: an edge speech-to-text daemon."""

from listend.daemon.plugin.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
