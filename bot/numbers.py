"""Numbers from text (settings, ids in paths and commands) and from JSON (upstream answers), parsed one way."""

from __future__ import annotations

import math


def whole_number(text: str, *, max_digits: int = 18) -> int | None:
    """A non-negative integer written in ASCII digits only, else None.

    str.isdigit() alone accepts "١٢" and "²", which int() then reads or rejects; and a bound on the digits
    keeps a hostile value from costing a huge int conversion.
    """
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def finite_number(value: object, *, minimum: float | None = None) -> float | None:
    """A finite real number at or above `minimum` (bool is not a number), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        return None
    return number
