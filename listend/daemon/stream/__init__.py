"""Stream sessions: one source's audio over Deepgram's streaming API, nothing lost."""
