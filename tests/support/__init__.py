"""Shared test helpers, one module per kind of thing (conftest.py holds only fixtures).

- paths: ROOT and FIXTURES
- net: free_port, wait_for_port
- waiting: wait_until / wait_until_async (one deadline loop), async_test
- cli: listend_cmd, run_listend, run_python, DaemonProcess (``listend run`` as a child)
- events: transcript, said, utterance_end (events as a stream session makes them)
- outbox: seed_outbox, outbox_ids
- mqtt: Mosquitto (a broker a test can stop), Subscriber
- http: Receiver (a real HTTP server recording requests; the `receiver` fixture)
- audio: wav_bytes (also the odd formats a source must refuse), read_pcm
- sessions: MemorySource, Collector, make_session, watermark, source_ranges, config_text
- engine: LoopThread, warm_up (the local engine fixtures' machinery), client_for (the SDK on a
  local engine), collect, check_words, silence
- evaluation: normalize, word_errors, word_error_rate, synthesize (WER of the local engine)
- captions, browser: the captions page tests (headless Chromium over DevTools)
- homeassistant: the keys HA's MQTT platforms accept, render (templates as HA renders them)
- wyoming: wyoming_daemon, transcribe, Answer (the Wyoming server as Home Assistant uses it)
- fake_mic, source_harness: the microphone tests (ALSA FIFO device, sources in a subprocess)
- bounds: every number a config can set (the bounds tests)
- hostile: hostile config files (bad encodings, bombs, odd keys) for the fuzz and reload tests
"""
