"""``one_line``: the one text rule behind every one-line error message of the pipeline."""
from __future__ import annotations

from typing import Any


def one_line(text: Any, limit: int | None = None) -> str:
    """``text`` (any object, an exception included) squashed to one line of single spaces.

    An exception with no message gives its type's name; ``limit`` cuts a longer line to
    ``limit`` characters ending in ``...``.
    """
    line = " ".join(str(text).split())
    if not line and isinstance(text, BaseException):
        line = type(text).__name__
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 3, 0)] + "..."
    return line
