"""URLs with credentials in them (``http://user:PASS@host/``) are refused, not logged.

Every retry warning, error and event names the URL it is about; a password in it would be in
the journal on every line. Credentials belong in the options made for them (``basic_auth:``,
``bearer_token:``, ``api_key:``: secret references, never logged). :func:`redact_url` is for
URLs that come from elsewhere (a command line) and are shown in messages.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def reject_userinfo(value: str, instead: str) -> str:
    """``value`` unchanged; a ValueError (a config error at its line) if it holds userinfo."""
    if _userinfo(value):
        msg = f"the URL holds a user name or password ({redact_url(value)}): "
        msg += f"it would be logged; use {instead} instead"
        raise ValueError(msg)
    return value


def redact_url(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``."""
    if not _userinfo(url):
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def _userinfo(url: str) -> bool:
    try:
        netloc = urlsplit(url).netloc
    except ValueError:  # e.g. an invalid IPv6 literal: no userinfo to find either
        return "@" in url
    return "@" in netloc
