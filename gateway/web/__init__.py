"""The HTTP side: the application, one error shape, sessions, the desk API and console."""
