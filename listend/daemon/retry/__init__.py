"""Retrying: the one backoff policy and the restart loop for live sources."""
