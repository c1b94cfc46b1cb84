"""The documents' examples: one plausible case, as the records the bus really sends.

Every example is a real model instance put through `codec.encode`, made deterministic
(fixed times and event ids), so example headers and payloads are exactly what the bus sends.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from phoihop_schemas.codec import (
    SUBMISSION_ID_NAMESPACE,
    DecodeError,
    Record,
    dead_letter_headers,
    decode,
    encode,
    lifecycle_event_id,
    submission_id,
)
from phoihop_schemas.events import (
    Accepted,
    Answered,
    Assigned,
    Channel,
    Closed,
    Decision,
    Declined,
    DuplicateDismissed,
    DuplicateSuggested,
    Escalated,
    Extended,
    InboundSubmission,
    Kind,
    Level,
    Merged,
    NotificationOutcome,
    Received,
    Reminded,
    Reopened,
    Reporter,
    Response,
    ResponseAction,
    SuggestedDuplicate,
    Unmerged,
)
from phoihop_schemas.topics import INBOUND_SUBMISSIONS, ce_type_for

_T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 08:30 in Vietnam
_SUBMITTER = "UBMTTQ_TINH"
_IDEMPOTENCY_KEY = "MTTQ-2026-0042"


_REC = submission_id(agency=_SUBMITTER, key=_IDEMPOTENCY_KEY)
_DUP = submission_id(agency="DOAN_DBQH", key="DBQH-KN-2026-117")
_DECISION = Decision(
    rule="giao-thong-tinh-lo",
    version="2026.03",
    evidence=("đường liên thôn", "sạt lở"),
    confidence=0.93,
)


def _at(*, hours: float = 0, days: int = 0) -> datetime:
    return _T0 + timedelta(days=days, hours=hours)


def example_events() -> dict[str, list[tuple[str, BaseModel]]]:
    """Message id → (summary, model instance) of one plausible case."""
    life: dict[str, Any] = {"recommendation_id": _REC}
    text = "Cử tri thôn 3 xã An Bình đề nghị sửa chữa đường liên thôn bị sạt lở sau mưa lũ."
    return {
        "inbound_submission": [
            (
                "A voters' recommendation with an idempotency key",
                InboundSubmission(
                    kind=Kind.KIEN_NGHI,
                    channel=Channel.TIEP_XUC_CU_TRI,
                    locality="xa-an-binh",
                    text=text,
                    submitted_at=date(2026, 3, 1),
                    source_ref="MTTQ/TXCT/2026/15",
                    submitted_by=_SUBMITTER,
                    idempotency_key=_IDEMPOTENCY_KEY,
                ),
            ),
            (
                "A denunciation: reporter required, neither idempotency_key nor source_ref "
                "(the key is then ce:<ce_id>)",
                InboundSubmission(
                    kind=Kind.TO_CAO,
                    channel=Channel.DON_THU,
                    locality="xa-na-hang",
                    text="Tố cáo cán bộ địa chính xã nhận tiền để cấp giấy chứng nhận trái phép.",
                    reporter=Reporter(
                        name="Nguyễn Văn A", phone="0912 345 678", address="Thôn Bản Lác"
                    ),
                    submitted_by="THANH_TRA_TINH",
                ),
            ),
        ],
        "inbound_response": [
            (
                "The assignee answers",
                Response(
                    response_id="SXD-TL-2026-0117",
                    recommendation_id=_REC,
                    agency="SO_XAY_DUNG",
                    action=ResponseAction.ANSWER,
                    text="Sở Xây dựng đã bố trí kinh phí khắc phục, thi công xong trước 30/6/2026.",
                    responded_at=_at(days=20),
                ),
            ),
        ],
        "received": [
            (
                "Ingest accepted the submission above; recommendation_id is derived from "
                "submitted_by and idempotency_key",
                Received(
                    **life,
                    sequence=1,
                    occurred_at=_at(hours=0.1),
                    kind=Kind.KIEN_NGHI,
                    channel=Channel.TIEP_XUC_CU_TRI,
                    locality="xa-an-binh",
                    text=text,
                    submitted_at=date(2026, 3, 1),
                    source_ref="MTTQ/TXCT/2026/15",
                    submitted_by=_SUBMITTER,
                ),
            )
        ],
        "merged": [
            (
                "The same matter raised by the National Assembly delegation is linked",
                Merged(
                    recommendation_id=_DUP,
                    sequence=2,
                    occurred_at=_at(days=1),
                    duplicate_of=_REC,
                    similarity=0.91,
                    decision=Decision(
                        rule="dedup-minhash", version="2026.03", evidence=("sạt lở",)
                    ),
                    submitted_by="DOAN_DBQH",
                ),
            ),
            (
                "A person merges it by hand (`merge_into`), confirming a suggestion",
                Merged(
                    recommendation_id=_DUP,
                    sequence=4,
                    occurred_at=_at(days=2),
                    duplicate_of=_REC,
                    similarity=1.0,
                    decision=Decision(
                        rule="manual:merge_into",
                        version="lifecycle-1",
                        evidence=("merged_by=SO_XAY_DUNG",),
                    ),
                    submitted_by="DOAN_DBQH",
                    merged_by="SO_XAY_DUNG",
                ),
            ),
        ],
        "unmerged": [
            (
                "A wrong merge is undone: the case is its own again (assigned next)",
                Unmerged(
                    recommendation_id=_DUP,
                    sequence=3,
                    occurred_at=_at(days=3),
                    duplicate_of=_REC,
                    agency="TT_HDND",
                    reason="Khác tuyến đường",
                    recipients=("DOAN_DBQH",),
                    decision=Decision(
                        rule="manual:unmerge",
                        version="lifecycle-1",
                        evidence=("unmerged_by=TT_HDND",),
                    ),
                ),
            )
        ],
        "duplicate_dismissed": [
            (
                "The assignee says the suggested case is another matter",
                DuplicateDismissed(
                    recommendation_id=_DUP,
                    sequence=4,
                    occurred_at=_at(days=2),
                    candidate=_REC,
                    agency="SO_XAY_DUNG",
                    reason="Khác địa điểm",
                ),
            )
        ],
        "assigned": [
            (
                "Routing assigns the case to the Department of Construction",
                Assigned(
                    **life,
                    sequence=2,
                    occurred_at=_at(hours=0.2),
                    agency="SO_XAY_DUNG",
                    category="GIAO_THONG",
                    level=Level.TINH,
                    kind=Kind.KIEN_NGHI,
                    locality="xa-an-binh",
                    accept_deadline=_at(days=3),
                    deadline=_at(days=30),
                    decision=_DECISION,
                ),
            )
        ],
        "duplicate_suggested": [
            (
                "A similar matter below the auto-merge bar: suggested to the assignee and triage",
                DuplicateSuggested(
                    recommendation_id=_DUP,
                    sequence=3,
                    occurred_at=_at(days=1),
                    agency="SO_XAY_DUNG",
                    candidates=(
                        SuggestedDuplicate(
                            recommendation_id=_REC,
                            similarity=0.28,
                            evidence=(
                                "similarity 0.280: suggested (>= 0.15, < 0.3)",
                                "words 0.40: sạt, lở, kè",
                            ),
                        ),
                    ),
                    recipients=("SO_XAY_DUNG", "TT_HDND"),
                    decision=Decision(
                        rule="duplicates.rank_candidates",
                        version="2026.03",
                        evidence=("bucket=xa-an-binh/GIAO_THONG", "suggestions=1"),
                        confidence=0.28,
                    ),
                ),
            )
        ],
        "accepted": [
            (
                "The assignee takes it on",
                Accepted(**life, sequence=3, occurred_at=_at(days=1), agency="SO_XAY_DUNG"),
            ),
        ],
        "declined": [
            (
                "Another assignee declines as not competent",
                Declined(
                    recommendation_id=_DUP,
                    sequence=3,
                    occurred_at=_at(days=1),
                    agency="SO_NN_MT",
                    reason="Nội dung thuộc thẩm quyền của Sở Xây dựng.",
                ),
            )
        ],
        "reminded": [
            (
                "Reminder before the answer deadline",
                Reminded(
                    **life,
                    sequence=4,
                    occurred_at=_at(days=25),
                    agency="SO_XAY_DUNG",
                    deadline=_at(days=30),
                ),
            )
        ],
        "escalated": [
            (
                "The answer deadline passed: first level of the ladder",
                Escalated(
                    **life,
                    sequence=5,
                    occurred_at=_at(days=31),
                    agency="SO_XAY_DUNG",
                    level=1,
                    deadline=_at(days=30),
                    recipients=("UBND_TINH",),
                ),
            )
        ],
        "extended": [
            (
                "The answer deadline is extended",
                Extended(
                    **life,
                    sequence=5,
                    occurred_at=_at(days=20),
                    agency="SO_XAY_DUNG",
                    deadline=_at(days=45),
                    extension=1,
                ),
            )
        ],
        "answered": [
            (
                "The answer, delivered to every source (merged ones too)",
                Answered(
                    **life,
                    sequence=6,
                    occurred_at=_at(days=20),
                    agency="SO_XAY_DUNG",
                    text="Sở Xây dựng đã bố trí kinh phí khắc phục, thi công xong trước 30/6/2026.",
                    on_time=True,
                    recipients=(_SUBMITTER, "DOAN_DBQH"),
                ),
            )
        ],
        "reopened": [
            (
                "A supervisor finds the answer unsatisfactory",
                Reopened(
                    **life,
                    sequence=7,
                    occurred_at=_at(days=22),
                    agency="SO_XAY_DUNG",
                    reason="Cử tri chưa đồng ý: chưa nêu rõ thời gian khởi công.",
                    deadline=_at(days=52),
                ),
            )
        ],
        "closed": [
            (
                "A supervisor closes the case",
                Closed(**life, sequence=8, occurred_at=_at(days=40), closed_by="TT_HDND"),
            ),
        ],
        "notification_outcome": [
            (
                "The assignment was delivered to the assignee's webhook",
                NotificationOutcome(
                    recommendation_id=_REC,
                    event_id=lifecycle_event_id(_REC, 2),
                    event_type=ce_type_for("assigned"),
                    subscription_id="so-xay-dung-webhook",
                    agency="SO_XAY_DUNG",
                    channel="webhook",
                    attempt=1,
                    outcome="delivered",
                    status_code=200,
                    latency_ms=84.0,
                    attempted_at=_at(hours=0.25),
                ),
            )
        ],
    }


def _source(model: BaseModel) -> str:
    if isinstance(model, InboundSubmission):
        return f"/agency/{model.submitted_by}"
    if isinstance(model, Response):
        return f"/agency/{model.agency}"
    if isinstance(model, NotificationOutcome):
        return "/phoihop/notify"
    if isinstance(model, Received):
        return "/phoihop/ingest"
    return "/phoihop/routing"


def example_record(model: BaseModel, *, index: int) -> Record:
    """The record the bus (or a well-behaved agency) sends for `model`, made deterministic."""
    time = getattr(model, "occurred_at", None) or getattr(model, "attempted_at", None)
    event_id = None
    key = None
    if isinstance(model, InboundSubmission | Response):
        event_id = str(uuid.uuid5(SUBMISSION_ID_NAMESPACE, f"example/{index}"))
        time = _T0 if isinstance(model, InboundSubmission) else model.responded_at
    if isinstance(model, InboundSubmission):
        key = model.idempotency_key or model.source_ref or f"ce:{event_id}"
    return encode(model, source=_source(model), event_id=event_id, time=time, key=key)


def example(*, name: str, summary: str, record: Record) -> dict[str, Any]:
    # an example object has no place for the key (nor extensions): the summary tells it
    key = "none" if record.key is None else record.key.decode("utf-8")
    return {
        "name": name,
        "summary": f"{summary}. Kafka key: {key}",
        "headers": {k: v.decode("utf-8") for k, v in record.headers},
        "payload": json.loads(record.value),
    }


def dead_letter_example() -> dict[str, Any]:
    """A real decode failure: a submission whose `kind` is prose, dead-lettered by ingest."""
    sub = example_events()["inbound_submission"][0][1]
    good = example_record(sub, index=9)
    data = json.loads(good.value)
    data["kind"] = "kiến nghị"
    value = json.dumps(data).encode()
    try:
        decode(value=value, headers=good.headers, key=good.key)
    except DecodeError as exc:
        reason, detail = exc.reason, exc.detail
    else:  # pragma: no cover - the example must fail
        raise AssertionError("the dead-letter example decoded")
    extra = dead_letter_headers(
        reason=reason,
        detail=detail,
        topic=INBOUND_SUBMISSIONS.name,
        partition=7,
        offset=1532,
        service="ingest",
    )
    fixed = [(k, v if k != "dlq_time" else b"2026-03-02T01:30:04.512000+00:00") for k, v in extra]
    record = Record(key=good.key, value=value, headers=[*good.headers, *fixed])
    return example(
        name="schema_violation",
        summary="ingest refused a submission whose kind is not a code",
        record=record,
    )
