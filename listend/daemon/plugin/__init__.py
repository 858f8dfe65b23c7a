"""The plugin system: hook specs, the plugin manager, and the Source and Sink contracts."""
