"""`python -m phoihop_notify`: run the notify service."""

from __future__ import annotations

import uvicorn

from phoihop_common.logs import configure_logging
from phoihop_notify.app import create_app
from phoihop_notify.settings import NotifySettings


def main() -> None:
    """Configure logging and serve the app."""
    settings = NotifySettings()
    configure_logging(service="notify", level=settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
