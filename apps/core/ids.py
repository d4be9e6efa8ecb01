"""Database ids from client input: ASCII digits only, within a bigint.

Python's `int()` and `str.isdigit()` accept far more than an id: "²".isdigit() is True but
int("²") fails, int("١٢") is 12, and a 5,000-digit string overflows the database's bigint.
Every id that comes from a URL, a query string, a form or a JSON body goes through here.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

MAX_ID = 2**63 - 1  # PostgreSQL bigint, the type of every primary key
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(value: Any) -> int | None:
    """`value` as an id (1 .. MAX_ID) if it is one, written in ASCII digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 1 <= number <= MAX_ID else None


class IdConverter:
    """URL converter `<id:name>`: like `<id:name>`, bounded to an id (else the URL does not
    match, a 404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(value)
        return number

    def to_url(self, value: int) -> str:
        return str(value)


class IdField(serializers.IntegerField):
    """An id in a request body: a JSON integer or a string of ASCII digits, 1 .. MAX_ID."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        if isinstance(data, str) and not _DIGITS.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)
