"""Tables (all prefixed `audit_`), engines for SQLite and PostgreSQL, and migrations at start."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from phoihop_common import db as db_kit
from phoihop_common.db import WRITE as WRITE  # re-exported for callers
from phoihop_common.db import ping as ping

VERSION_TABLE = "alembic_version_audit"
HEAD_ID = 1
GENESIS_HASH = "0" * 64
# Transactions that append to the log use `WRITE`: on SQLite they start with BEGIN IMMEDIATE
# so two writers (two replicas, or the consumer and a checkpointer) serialise.

metadata = MetaData()

log_head = Table(
    "audit_log_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
)

events = Table(
    "audit_events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(100), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("recommendation_id", String(100), nullable=False),
    Column("sequence", Integer, nullable=True),
    Column("source", String(200), nullable=False),
    Column("event_time", String(40), nullable=True),
    Column("data", Text, nullable=False),
    Column("reporter_enc", Text, nullable=True),
    Column("content_digest", String(64), nullable=False),
    Column("stored_at", String(40), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    Index("ix_audit_events_rec_seq", "recommendation_id", "sequence"),
    Index("ix_audit_events_type", "type"),  # migration 0004
)

checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", Text, nullable=False),
)

recommendations = Table(
    "audit_recommendations",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("status", String(20), nullable=True),
    Column("kind", String(20), nullable=True),
    Column("channel", String(30), nullable=True),
    Column("locality", String(64), nullable=True),
    Column("category", String(64), nullable=True),
    Column("level", String(20), nullable=True),
    Column("agency", String(64), nullable=True),
    Column("submitted_by", String(64), nullable=True),
    Column("source_ref", String(200), nullable=True),  # migration 0003
    Column("text", Text, nullable=True),
    Column("text_folded", Text, nullable=True),
    Column("received_at", DateTime, nullable=True),
    Column("first_assigned_at", DateTime, nullable=True),
    Column("deadline", DateTime, nullable=True),
    Column("duplicate_of", String(100), nullable=True),
    Column("sequence", Integer, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("answered_at", DateTime, nullable=True),
    Column("answered_on_time", Boolean, nullable=True),
    Column("answer_days", Float, nullable=True),
    Column("closed_at", DateTime, nullable=True),
    Column("has_gap", Boolean, nullable=False),
    Index("ix_audit_recommendations_agency", "agency"),
    Index("ix_audit_recommendations_received_at", "received_at"),
    Index("ix_audit_recommendations_duplicate_of", "duplicate_of"),
    Index("ix_audit_recommendations_source_ref", "source_ref"),
)

involvement = Table(
    "audit_involvement",
    metadata,
    Column("recommendation_id", String(100), primary_key=True),
    Column("agency", String(64), primary_key=True),
    Column("relation", String(20), primary_key=True),
    Column("via", String(100), primary_key=True),
    Index("ix_audit_involvement_agency", "agency"),
)


def make_engine(url: str) -> Engine:
    """An engine for `url`; on SQLite writers serialise (BEGIN IMMEDIATE) and commit durably."""
    return db_kit.make_engine(url, explicit_transactions=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (Alembic, version table `alembic_version_audit`)."""
    db_kit.migrate(engine, package="phoihop_audit")
