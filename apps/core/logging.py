"""Logging: an expected refusal is one line, not a traceback."""

from __future__ import annotations

import logging


class ClientErrorsInOneLine(logging.Filter):
    """Drop the traceback Django attaches to 4xx records (a 403 page, a 404, a 400 from a
    suspicious request): they answer a client's mistake, not a fault. 5xx keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
