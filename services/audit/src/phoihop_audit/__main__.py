"""`python -m phoihop_audit` runs the service; `python -m phoihop_audit verify` checks the log."""

from __future__ import annotations

import argparse
import json
import sys

import uvicorn

from phoihop_audit import db, log
from phoihop_audit.app import create_app
from phoihop_audit.keys import load_signer
from phoihop_audit.settings import AuditSettings
from phoihop_common.logs import configure_logging


def verify_command(settings: AuditSettings) -> int:
    """Print the verification result as JSON; exit 0 when the log is intact, 1 otherwise."""
    engine = db.make_engine(settings.database_url)
    try:
        result = log.verify_log(engine, signer=load_signer(settings))
    finally:
        engine.dispose()
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if result["ok"] else 1


def checkpoint_command(settings: AuditSettings) -> int:
    """Sign a checkpoint now (if the log grew) and print it."""
    engine = db.make_engine(settings.database_url)
    try:
        cp = log.make_checkpoint(engine, signer=load_signer(settings))
    finally:
        engine.dispose()
    print(json.dumps(cp.as_dict() if cp else None, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="phoihop_audit")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "verify", "checkpoint"]
    )
    args = parser.parse_args(argv)
    settings = AuditSettings()
    configure_logging(service="audit", level=settings.log_level)
    if args.command == "verify":
        return verify_command(settings)
    if args.command == "checkpoint":
        return checkpoint_command(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
