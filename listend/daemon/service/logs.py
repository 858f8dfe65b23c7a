"""Logging setup: syslog priority prefixes under journald, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
import sys

# sd-daemon(3) priority prefixes, so `journalctl -p warning` works.
_PRIORITY = {
    logging.DEBUG: "<7>",
    logging.INFO: "<6>",
    logging.WARNING: "<4>",
    logging.ERROR: "<3>",
    logging.CRITICAL: "<2>",
}


class JournalFormatter(logging.Formatter):
    """No timestamp (journald adds one); a ``<N>`` priority prefix on every line."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = _PRIORITY.get(record.levelno, "<6>")
        text = super().format(record)
        return "\n".join(prefix + line for line in text.splitlines())


def under_journald() -> bool:
    """True when stderr is the journal stream systemd gave us (see systemd.exec(5))."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        device, inode = (int(part) for part in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if under_journald():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """Set listend's level (also on reload); chatty libraries stay at warning or above."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for noisy in ("websockets", "httpx", "httpcore", "asyncio", "aiohttp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
