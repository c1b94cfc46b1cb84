"""The edge's one text policy: what text, JSON and dates the bus accepts from outside.

Decided once, applied everywhere (ingest HTTP, inbound topics, every consumer's decoder):

- Text is NFC-normalised (diacritics kept) and *rejected*, never cleaned, when it holds
  NUL, another C0 control than tab / newline / carriage return, DEL, a C1 control
  (U+0080-U+009F), a lone UTF-16 surrogate (U+D800-U+DFFF) or a noncharacter of the
  basic plane (U+FDD0-U+FDEF, U+FFFE, U+FFFF): such text cannot be stored (PostgreSQL
  refuses NUL, UTF-8 encoders refuse surrogates) or only serves to hide something.
- Untrusted JSON goes through `loads`: UTF-8 only, no NaN / Infinity, bounded nesting
  depth and integer size, and no other exception than `JsonPolicyError`.
- An inbound `submitted_at` lies between 2000-01-01 and ten minutes from now. A naive
  datetime or a bare date is Vietnam local time (UTC+7), where every submitter is.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

VIETNAM = timezone(timedelta(hours=7), "ICT")
SUBMITTED_AT_FLOOR = datetime(2000, 1, 1, tzinfo=VIETNAM)
SUBMITTED_AT_SKEW = timedelta(minutes=10)
MAX_FLOAT_CHARS = 64

# The BMP noncharacters only: the astral ones are harmless to store and would make the
# character class ten times slower.
_FORBIDDEN = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)


class JsonPolicyError(ValueError):
    """Untrusted JSON refused; `reason` is machine-readable, `detail` explains."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_text(value: str) -> str:
    """NFC-normalised `value`, or ValueError `invalid_text: U+XXXX at N` on a forbidden one."""
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise ValueError(f"invalid_text: U+{ord(bad.group()):04X} at {bad.start()}")
    return unicodedata.normalize("NFC", value)


def _parse_int(literal: str, limit: int) -> int:
    digits = len(literal) - (literal[0] == "-")
    if digits > limit:
        raise JsonPolicyError("json_number_too_large", f"integer of {digits} digits > {limit}")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_FLOAT_CHARS:
        raise JsonPolicyError(
            "json_number_too_large", f"number of {len(literal)} characters > {MAX_FLOAT_CHARS}"
        )
    value = float(literal)
    if not math.isfinite(value):
        raise JsonPolicyError("json_number_too_large", f"{literal} overflows a double")
    return value


def _parse_constant(name: str) -> Any:
    raise JsonPolicyError("invalid_json", f"{name} is not JSON")


def _deeper_than(value: Any, max_depth: int) -> bool:
    """Whether containers nest deeper than `max_depth` (iterative, linear in the nodes)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def loads(data: bytes | bytearray | str, *, max_depth: int = 32, max_int_digits: int = 30) -> Any:
    """Parse untrusted JSON; any refusal is a JsonPolicyError, never another exception."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonPolicyError(
                "invalid_json", f"not UTF-8: {exc.reason} at {exc.start}"
            ) from exc
    else:
        text = data
    try:
        value = json.loads(
            text,
            parse_int=lambda s: _parse_int(s, max_int_digits),
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except JsonPolicyError:
        raise
    except RecursionError as exc:
        # the C scanner refuses to nest deeper than the interpreter's recursion limit
        raise JsonPolicyError("json_too_deep", f"nesting deeper than {max_depth}") from exc
    except ValueError as exc:
        raise JsonPolicyError("invalid_json", str(exc)[:300]) from exc
    # Nesting can only be as deep as there are opening brackets: counting them is C-fast,
    # so the walk runs only for bodies with many containers.
    if (
        isinstance(value, dict | list)
        and text.count("[") + text.count("{") > max_depth
        and _deeper_than(value, max_depth)
    ):
        raise JsonPolicyError("json_too_deep", f"nesting deeper than {max_depth}")
    return value


def check_submitted_at(
    value: date | datetime | None, *, now: datetime | None = None
) -> date | datetime | None:
    """`value` unchanged, or ValueError `invalid_submitted_at: ...` before 2000 or too late."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.utcoffset() is not None else value.replace(tzinfo=VIETNAM)
    else:
        moment = datetime.combine(value, time(), tzinfo=VIETNAM)
    if moment < SUBMITTED_AT_FLOOR:
        raise ValueError(f"invalid_submitted_at: {value.isoformat()} is before 2000-01-01")
    latest = (now or datetime.now(UTC)) + SUBMITTED_AT_SKEW
    if moment > latest:
        raise ValueError(f"invalid_submitted_at: {value.isoformat()} is in the future")
    return value
