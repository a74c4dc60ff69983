"""The `webchat` channel kind: an anonymous chat in the browser (see README.md here)."""

from adapters.webchat.kind import WebChat

__all__ = ["WebChat"]
