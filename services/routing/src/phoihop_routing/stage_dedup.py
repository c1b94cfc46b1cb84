"""Stage 2, `routing-dedup` (ROUTING_DEDUP, keyed by bucket): the duplicate verdict.

Keeps the faust table `buckets` (one entry per open case: `tables.member_key(bucket, case)`
-> signature, so a write costs one signature whatever the bucket's size) and an in-memory
index bucket -> signatures (rebuilt from the table after each rebalance), ranks the open
cases once (`DuplicateIndex.rank`: the first is merged when it reaches the merge bar, else
the cases above the suggestion bar are suggested, best first), adds a new case's signature,
and sends the verdict (`internal.RouteMessage`: new with its suggestions, or duplicate of an
open case) to ROUTING_COMMANDS keyed by recommendation id. It also applies `leave` (a case
was closed or re-classified) and `join` (a triaged case got its real classification).
"""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping
from typing import Any

from phoihop_routing import duplicates
from phoihop_routing.duplicates import CaseSignature, DuplicateIndex
from phoihop_routing.exceptions import InternalMessageError
from phoihop_routing.internal import (
    CandidateMessage,
    JoinMessage,
    LeaveMessage,
    RouteMessage,
    decode_dedup,
)
from phoihop_routing.stage_base import (
    STAGE_DEDUP,
    Incoming,
    Plumbing,
    put_partitioned,
    remove_partitioned,
)
from phoihop_routing.tables import iter_members, member_key
from phoihop_schemas.events import Decision, SuggestedDuplicate
from phoihop_schemas.topics import ROUTING_COMMANDS


def _unit(value: float) -> float:
    return max(0.0, min(1.0, float(value)))


class DedupStage:
    """Stage 2: duplicate verdict within one bucket; bucket membership updates."""

    def __init__(self, plumbing: Plumbing, *, buckets: MutableMapping[str, Any]) -> None:
        self.plumbing = plumbing
        self.buckets = buckets  # member_key(bucket, rec id) -> CaseSignature
        self.members: dict[str, DuplicateIndex] = {}
        self.generation: int | None = None  # of the consumer group when `members` was built

    async def on_dedup(self, record: Incoming) -> None:
        """One record of ROUTING_DEDUP: a candidate, or a case leaving or joining a bucket."""
        await self.plumbing.guarded(STAGE_DEDUP, record, lambda: self._dedup(record))

    async def _dedup(self, record: Incoming) -> bool:
        try:
            message = decode_dedup(record.value)
            if isinstance(message, CandidateMessage):
                await self._candidate(message, partition=record.partition)
            elif isinstance(message, LeaveMessage):
                self._leave(message, partition=record.partition)
            else:
                self._join(message, partition=record.partition)
        except (InternalMessageError, KeyError, TypeError, ValueError) as exc:
            await self.plumbing.dead_letter(record, reason="bad_internal_message", detail=str(exc))
            return False
        self.plumbing.processed(record)
        return True

    def rebuild(self, *, generation: int | None) -> None:
        """Re-read the bucket-member table into the in-memory index (after a rebalance)."""
        self.members.clear()
        for bucket, _, sig in iter_members(self.buckets):
            self.members.setdefault(bucket, DuplicateIndex()).add(sig)
        self.generation = generation

    def bucket_members(self, bucket: str) -> list[CaseSignature]:
        """Signatures of the open cases of one bucket, oldest first."""
        index = self.members.get(bucket)
        return index.values() if index is not None else []

    async def _candidate(self, candidate: CandidateMessage, *, partition: int) -> None:
        bucket = candidate.bucket
        sig = candidate.signature
        rec_id = candidate.received.recommendation_id
        members = self.members.get(bucket)
        already_member = members is not None and rec_id in members
        # one search: the merge (the first candidate when it reaches the merge bar, = what
        # `find_duplicate` returns) or else the suggestions, best first
        ranked = [] if already_member or members is None else members.rank(candidate=sig)
        found = ranked[0] if ranked and ranked[0].verdict == duplicates.MERGE else None
        version = duplicates.VERSION
        verdict = RouteMessage(
            bucket=bucket, received=candidate.received, classification=candidate.classification
        )
        if found is not None:
            score = _unit(found.similarity)
            merge = Decision(
                rule="duplicates.find_duplicate",
                version=version,
                evidence=(
                    f"bucket={bucket}",
                    f"open_case={found.recommendation_id}",
                    f"similarity={score:.3f}",
                ),
                confidence=score,
            )
            verdict = dataclasses.replace(
                verdict,
                duplicate_of=found.recommendation_id,
                similarity=score,
                merge_decision=merge,
            )
        suggestions = (
            ()
            if found is not None
            else tuple(
                SuggestedDuplicate(
                    recommendation_id=c.recommendation_id,
                    similarity=_unit(c.similarity),
                    evidence=c.evidence,
                )
                for c in ranked
                if c.verdict == duplicates.SUGGEST_VERDICT
            )
        )
        if suggestions:
            suggest = Decision(
                rule="duplicates.rank_candidates",
                version=version,
                evidence=(
                    f"bucket={bucket}",
                    *(
                        f"suggested={s.recommendation_id} similarity={s.similarity:.3f}"
                        for s in suggestions
                    ),
                ),
                confidence=max(s.similarity for s in suggestions),
            )
            verdict = dataclasses.replace(
                verdict, suggestions=suggestions, suggest_decision=suggest
            )
        await self.plumbing.send_internal(topic=ROUTING_COMMANDS.name, key=rec_id, message=verdict)
        if found is None and not already_member:
            self._add_member(bucket, sig, partition=partition)

    def _add_member(self, bucket: str, sig: CaseSignature, *, partition: int) -> None:
        rec_id = sig.recommendation_id
        put_partitioned(self.buckets, member_key(bucket, rec_id), sig, partition=partition)
        self.members.setdefault(bucket, DuplicateIndex()).add(sig)

    def _leave(self, message: LeaveMessage, *, partition: int) -> None:
        bucket, rec_id = message.bucket, message.recommendation_id
        members = self.members.get(bucket)
        if members is None or rec_id not in members:
            return
        remove_partitioned(self.buckets, member_key(bucket, rec_id), partition=partition)
        members.remove(rec_id)
        if not members:
            del self.members[bucket]

    def _join(self, message: JoinMessage, *, partition: int) -> None:
        joining = message.signature
        members = self.members.get(message.bucket)
        if members is None or joining.recommendation_id not in members:
            self._add_member(message.bucket, joining, partition=partition)
