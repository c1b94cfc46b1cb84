"""Structured JSON logs (structlog) carrying recommendation and event ids."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, service: str, level: str = "INFO") -> None:
    """JSON lines on stderr, bound to the service name; stdlib logging routed through it."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format='{"level":"%(levelname)s","logger":"%(name)s","msg":%(message)r}',
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger."""
    return structlog.get_logger(name)
