"""The API's JSON parser: no body, however large or deep, can make it fail with a 500."""

from __future__ import annotations

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

#: Deepest nesting of arrays and objects a JSON body may have: PrefLoop's deepest is 3
#: (a ranking's groups); Python's parser raises RecursionError near 1,000.
MAX_JSON_DEPTH = 32


class BodyTooLarge(ParseError):
    default_detail = "The request body is too large."
    default_code = "too_large"


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with the two limits whose absence let a body raise a 500: its size
    (DATA_UPLOAD_MAX_MEMORY_SIZE, as Django applies to forms) and its nesting (a hundred
    thousand `[` overflowed the parser's recursion)."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        # Nesting needs an opening bracket per level: a body with few of them (every answer
        # a rater sends) needs no walk.
        openers = raw.count(b"[") + raw.count(b"{")
        if openers > MAX_JSON_DEPTH and _deeper_than(data, MAX_JSON_DEPTH):
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _deeper_than(data, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
