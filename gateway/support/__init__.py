"""Small helpers every layer may use: keys, passwords, limits, metrics, logs, settings, time."""
