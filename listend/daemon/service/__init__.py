"""Running as a service: the Daemon, signals, reload, health, metrics, sd_notify, logging."""
