"""The server side of Deepgram's /v1/listen protocol, shared by the local offline engine
(pocketsphinx) and ``listend.testing``, which fills its hooks (scripted transcripts, recorded
connections, fault injection)."""
