"""listend: an edge speech-to-text daemon. Plugins import from :mod:`listend.api`."""

__version__ = "0.1.0"

__all__ = ["__version__"]
