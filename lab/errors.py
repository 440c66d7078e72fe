"""The one error type of the lab tool."""

from __future__ import annotations

__all__ = ["LabError"]


class LabError(Exception):
    """A lab operation that cannot go on; the message says what was wrong and
    what would fix it."""
