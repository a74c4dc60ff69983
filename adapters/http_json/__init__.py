"""The `http-json` channel kind: a generic JSON webhook (see README.md here)."""

from adapters.http_json.kind import HttpJson

__all__ = ["HttpJson"]
