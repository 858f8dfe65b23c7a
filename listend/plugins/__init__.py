"""Built-in sources and sinks, registered through the `listend` entry-point group."""
