"""Structured logs: one JSON object a line, each with the request id it belongs to."""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime

from gateway.config import LoggingSettings

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


class JSONFormatter(logging.Formatter):
    """Fields: ts, level, logger, msg, request_id, plus any ``extra=`` given to the call."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", "")
        prefix = f"[{request_id[:8]}] " if request_id else ""
        return f"{record.levelname:<7} {record.name}: {prefix}{record.getMessage()}"


def stamp_request_id(record: logging.LogRecord) -> bool:
    """A handler filter: the request id is read where the record is made, since the
    formatting happens later, on the writer thread."""
    record.request_id = REQUEST_ID.get()
    return True


_listener: logging.handlers.QueueListener | None = None


def _stop_writer() -> None:
    """Write out what is queued (at exit, or before the writer is replaced)."""
    global _listener
    if _listener is not None and _listener._thread is not None:
        _listener.stop()


def configure_logging(settings: LoggingSettings) -> None:
    """Records are queued on the caller's thread and formatted and written by one writer
    thread, so a request on the event loop never waits for a write to stderr."""
    global _listener
    if _listener is None:
        atexit.register(_stop_writer)
    _stop_writer()
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(JSONFormatter() if settings.format == "json" else TextFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(records)
    handler.addFilter(stamp_request_id)
    _listener = logging.handlers.QueueListener(records, writer)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
