"""What is sent: the CloudEvent in structured JSON mode, redacted for its recipient."""

from __future__ import annotations

from collections import OrderedDict
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
    "unmerged": "Hủy gộp, xử lý riêng / merge undone, handled on its own",
    "assigned": "Giao xử lý / assigned",
    "duplicate_suggested": "Có thể trùng kiến nghị đang xử lý / possible duplicates",
    "duplicate_dismissed": "Xác nhận không trùng / not a duplicate",
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
    visible = redact(data, viewer=viewer, reference=reference)
    return _write(attributes, visible, cipher=cipher)


def _write(attributes: dict[str, Any], visible: dict[str, Any], *, cipher: PiiCipher) -> bytes:
    attrs = dict(attributes)
    if isinstance(attrs.get("time"), str):
        attrs["time"] = datetime.fromisoformat(attrs["time"])
    return _FORMAT.write(CloudEvent(attrs, reveal(visible, cipher=cipher)))


class BodyCache:
    """The bodies of recent events, each written once per view (reporter shown or not).

    An event's stored attributes and data never change, and what a recipient sees of it
    differs only by whether the access policy shows it the reporter: every subscriber of an
    event shares one of at most two bodies instead of each encoding (and decrypting) its own.
    """

    def __init__(self, *, size: int = 1024) -> None:
        self.size = size
        self._bodies: OrderedDict[tuple[str, bool], bytes] = OrderedDict()

    def body(
        self,
        *,
        event_id: str,
        attributes: dict[str, Any],
        data: dict[str, Any],
        viewer: str,
        cipher: PiiCipher,
        reference: Reference,
    ) -> bytes:
        """What `cloudevent_body` returns, written at most once per event and view."""
        visible = redact(data, viewer=viewer, reference=reference)
        key = (event_id, visible.get("reporter") is not None)
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
            return body
        body = self._bodies[key] = _write(attributes, visible, cipher=cipher)
        if len(self._bodies) > self.size:
            self._bodies.popitem(last=False)
        return body


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
