"""What is sent: the CloudEvent in structured JSON mode, redacted for its recipient."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from phoihop_notify.matching import redact

_FORMAT = JSONFormat()

SUMMARIES = {
    "received": "Tiếp nhận kiến nghị / recommendation received",
    "merged": "Kiến nghị trùng, đã gộp / merged with an open case",
    "assigned": "Giao xử lý / assigned",
    "accepted": "Đã nhận xử lý / accepted",
    "declined": "Từ chối, không thuộc thẩm quyền / declined",
    "answered": "Đã trả lời / answered",
    "reminded": "Nhắc hạn xử lý / deadline reminder",
    "escalated": "Quá hạn, báo cáo cấp trên / overdue, escalated",
    "extended": "Gia hạn / deadline extended",
    "reopened": "Mở lại / reopened",
    "closed": "Kết thúc / closed",
}


def envelope_attributes(
    *,
    event_id: str,
    ce_type: str,
    source: str,
    subject: str | None,
    time: datetime | None,
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """CloudEvents attributes as stored (JSON-ready)."""
    attrs: dict[str, Any] = {
        "id": event_id,
        "type": ce_type,
        "source": source,
        "specversion": "1.0",
        "datacontenttype": "application/json",
    }
    if subject:
        attrs["subject"] = subject
    if time:
        attrs["time"] = time.isoformat()
    attrs.update({k: str(v) for k, v in extensions.items()})
    return attrs


def cloudevent_body(*, attributes: dict[str, Any], data: dict[str, Any], viewer: str) -> bytes:
    """Structured-mode JSON CloudEvent with the data `viewer` may see."""
    attrs = dict(attributes)
    if isinstance(attrs.get("time"), str):
        attrs["time"] = datetime.fromisoformat(attrs["time"])
    return _FORMAT.write(CloudEvent(attrs, redact(data, viewer=viewer)))


def summary(*, event_type: str, recommendation_id: str) -> str:
    """One-line subject for people."""
    return f"[phoihop] {SUMMARIES.get(event_type, event_type)}: {recommendation_id}"
