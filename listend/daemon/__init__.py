"""The runtime core: config, plugins, stream sessions, routing, delivery."""
