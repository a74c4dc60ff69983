"""The `masker19` channel kind: the pharmacy intake form (see README.md here)."""

from adapters.masker19.kind import Masker19

__all__ = ["Masker19"]
