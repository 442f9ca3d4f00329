"""Structured logging with addresses masked.

Log records carry their context in ``extra={...}``; the JSON formatter writes it out.
Email addresses never appear in clear: :func:`mask_email` keeps only enough to tell
two addresses apart in a support conversation, and :class:`RedactingFilter` masks any
address that slipped into a message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-]+)@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: Terminal colour codes (uvicorn colours its messages); never written to a log.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Extra fields other libraries add that only repeat the message with colours.
_DROPPED = {"color_message"}
#: Loggers whose INFO lines are chatter: APScheduler writes two per job run.
DEMOTED = ("apscheduler.executors.default", "apscheduler.scheduler")


def mask_email(address: str) -> str:
    """``jane.doe@example.com`` -> ``j***@e***.com``: recognisable, not readable."""
    local, _, domain = address.partition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{host[:1]}***.{tld}" if domain else "***"


def _mask_text(text: str) -> str:
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """Masks email addresses in messages and extra fields, whoever logged them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = _mask_text(record.msg)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, _mask_text(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the extra context."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in _DROPPED}
        )
        payload["message"] = _ANSI.sub("", payload["message"])
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class DemoteToDebug(logging.Filter):
    """Turns a logger's INFO lines into DEBUG ones, shown only at ``LOG_LEVEL=DEBUG``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


class NoTracebacks(logging.Filter):
    """Drops tracebacks from records (``unsubscribe-mail``: its stderr may reach a sender)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def configure(level: str = "INFO", fmt: str = "text", *, tracebacks: bool = True) -> None:
    """Sets up the root logger once, for the CLI and the service.

    ``tracebacks=False`` leaves exceptions out of every line (one line each).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if not tracebacks:
        handler.addFilter(NoTracebacks())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Migrations run at every start; their step-by-step chatter is not news.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    for name in DEMOTED:
        demoted = logging.getLogger(name)
        if not any(isinstance(f, DemoteToDebug) for f in demoted.filters):
            demoted.addFilter(DemoteToDebug())
