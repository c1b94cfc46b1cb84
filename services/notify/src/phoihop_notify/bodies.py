"""What is sent: the CloudEvent in structured JSON mode, redacted for its recipient."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from phoihop_common.config import Reference
from phoihop_common.pii import PiiCipher, PiiDecryptError, open_reporter
from phoihop_notify.matching import redact
from phoihop_schemas.events import EncryptedReporter

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


def cloudevent_body(
    *,
    attributes: dict[str, Any],
    data: dict[str, Any],
    viewer: str,
    cipher: PiiCipher,
    reference: Reference,
) -> bytes:
    """Structured-mode JSON CloudEvent with the data `viewer` may see."""
    attrs = dict(attributes)
    if isinstance(attrs.get("time"), str):
        attrs["time"] = datetime.fromisoformat(attrs["time"])
    visible = redact(data, viewer=viewer, reference=reference)
    return _FORMAT.write(CloudEvent(attrs, reveal(visible, cipher=cipher)))


def reveal(data: dict[str, Any], *, cipher: PiiCipher) -> dict[str, Any]:
    """Data with the encrypted reporter that `redact` left in decrypted (PiiDecryptError)."""
    stored = data.get("reporter")
    if stored is None:
        return data
    try:
        sealed = EncryptedReporter.model_validate(stored)
    except ValidationError as exc:
        raise PiiDecryptError("the stored reporter is not encrypted") from exc
    reporter = open_reporter(
        sealed, recommendation_id=str(data.get("recommendation_id")), cipher=cipher
    )
    return {**data, "reporter": reporter.model_dump(mode="json")}


def summary(*, event_type: str, recommendation_id: str) -> str:
    """One-line subject for people."""
    return f"[phoihop] {SUMMARIES.get(event_type, event_type)}: {recommendation_id}"
