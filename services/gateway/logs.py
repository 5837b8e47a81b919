"""Structured JSON logs (one object per line on stderr) for the ``gateway`` logger.

Each record carries ``ts``, ``level``, ``logger``, ``msg`` and any ``extra={...}`` fields
(``request_id``, ``method``, ``path``, ``status``, ``duration_ms``...). Request headers are never
logged, so ``Authorization`` cannot leak.
"""

from __future__ import annotations

import json
import logging
import sys
import time

LOGGER_NAME = "gateway"
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str) -> logging.Logger:
    """Attach one JSON stderr handler to the ``gateway`` logger (idempotent) and set its level."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_gateway_json", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._gateway_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    return logger
