"""What audit shares between requests and background tasks: database, keys, reference data,
metrics, proof caches and the consumer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy import Engine

from phoihop_audit import db, log
from phoihop_audit.consumer import AuditConsumer
from phoihop_audit.keys import PiiCipher, Signer, load_pii_cipher, load_signer
from phoihop_audit.metrics import AuditMetrics
from phoihop_audit.settings import AuditSettings
from phoihop_common.auth import ApiKeys
from phoihop_common.config import Reference, default_config_dir, load_reference


@cache
def audit_metrics() -> AuditMetrics:
    """The process's metrics (registered once even when several apps are built, as in tests)."""
    return AuditMetrics.create()


@dataclass
class Runtime:
    """Everything the request handlers and background tasks share."""

    settings: AuditSettings
    engine: Engine
    signer: Signer
    cipher: PiiCipher
    reference: Reference
    api_keys: ApiKeys
    metrics: AuditMetrics
    proofs: log.ProofCache = field(default_factory=log.ProofCache)
    full_verify: log.FullVerifyGate = field(default_factory=log.FullVerifyGate)
    consumer: AuditConsumer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def consuming(self) -> bool:
        """True when the Kafka consumer has partitions (or is disabled for this app)."""
        if self.consumer is None:
            return True
        alive = all(not t.done() for t in self.tasks)
        return alive and self.consumer.assigned

    def consumer_problem(self) -> str | None:
        """Why the consumer counts as stuck (retrying the same records, or lag without commits)."""
        return None if self.consumer is None else self.consumer.kit.problem()


def build_runtime(settings: AuditSettings) -> Runtime:
    """Open the database (migrated), load keys and reference data."""
    config_dir = settings.config_dir or default_config_dir()
    engine = db.make_engine(settings.database_url)
    db.migrate(engine)
    return Runtime(
        settings=settings,
        engine=engine,
        signer=load_signer(settings),
        cipher=load_pii_cipher(settings),
        reference=load_reference(config_dir),
        api_keys=ApiKeys.load(settings.api_keys_path()),
        metrics=audit_metrics(),
        proofs=log.ProofCache(size=settings.proof_cache_size),
        full_verify=log.FullVerifyGate(per_minute=settings.full_verify_per_minute),
    )
