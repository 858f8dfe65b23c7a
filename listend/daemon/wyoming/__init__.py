"""The Wyoming speech-to-text server: Home Assistant's Assist transcribes through listend."""
