"""`python -m phoihop_routing`: run the routing worker (faust), settings from the environment."""

from __future__ import annotations

import sys
from typing import Any

import structlog

from phoihop_common.logs import configure_logging, get_logger
from phoihop_routing.app import create_app
from phoihop_routing.settings import Settings


def _add_service(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("service", "routing")
    return event


def faust_logging_config(level: str) -> dict[str, Any]:
    """dictConfig for the faust worker: its stdlib log records as JSON lines on stderr too."""
    formatter = {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        "foreign_pre_chain": [
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_service,
        ],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def faust_level(level: str) -> str:
    """Faust's CLI spelling of a log level (crit, error, warn, info, debug)."""
    name = level.lower()
    return {"warning": "warn", "critical": "crit", "fatal": "crit"}.get(name, name)


def main() -> None:
    """Start the faust worker with structured logs; returns when the worker stops."""
    settings = Settings()
    configure_logging(service="routing", level=settings.log_level)
    routing = create_app(settings)
    routing.app.conf.logging_config = faust_logging_config(settings.log_level)
    get_logger(__name__).info(
        "starting",
        app_id=routing.app.conf.id,
        bootstrap=settings.kafka_bootstrap,
        port=settings.port,
        store=settings.store,
    )
    # --quiet: no banner on stdout, every line on stderr is JSON
    argv0 = sys.argv[0] or "phoihop-routing"
    sys.argv = [argv0, "--quiet", "worker", "-l", faust_level(settings.log_level)]
    routing.app.main()


if __name__ == "__main__":
    main()
