"""Structured logs: one JSON object per line on stderr, with the ``extra`` fields a call site passes
(``log.info("rollout advanced", extra={"rollout": 3})``), so a log shipper indexes them as fields."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName",
                                                                        "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items()
                          if k not in _STANDARD and not k.startswith("_"))
        return f"mcuota serve: {record.getMessage()}" + (f" ({extras})" if extras else "")


def configure(fmt: str = "json", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send mcuota's and uvicorn's logs to ``stream`` (stderr) in ``fmt`` ("json" or "text")."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    quiet = {"alembic", "amqtt", "transitions"}      # chatty libraries: warnings and errors only
    for name in ("mcuota", "uvicorn", "uvicorn.error", *sorted(quiet)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if name in quiet else level)
        logger.propagate = False
