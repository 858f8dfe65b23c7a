"""The server side of Deepgram's /v1/listen protocol, shared by ``listend.testing`` (scripted
transcripts, fault injection) and the local offline engine (pocketsphinx)."""
