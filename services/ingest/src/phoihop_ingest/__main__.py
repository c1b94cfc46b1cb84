"""`python -m phoihop_ingest`: serve the ingest API with uvicorn."""

from __future__ import annotations

import uvicorn

from phoihop_common.logs import configure_logging
from phoihop_ingest.app import create_app
from phoihop_ingest.settings import IngestSettings


def main() -> None:
    """Run the service until SIGINT/SIGTERM."""
    settings = IngestSettings()
    configure_logging(service="ingest", level=settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
