"""Bulk import of a session's batch: JSON lines, CSV and XLSX, streamed row by row.

Rows are numbered as the file shows them: the JSON lines file's line number; the
spreadsheet row for CSV and XLSX (the header is row 1, the first data row is row 2).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from phoihop_common.config import Reference
from phoihop_common.pii import PiiCipher
from phoihop_ingest.exceptions import (
    IngestError,
    InvalidInputError,
    PayloadTooLargeError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from phoihop_ingest.idempotency import MAX_KEY_CHARS, IdempotencyStore
from phoihop_ingest.metrics import IngestMetrics
from phoihop_ingest.publisher import Publisher
from phoihop_ingest.submissions import Pending, submit_many
from phoihop_ingest.validation import validate_submission
from phoihop_schemas import textpolicy
from phoihop_schemas.events import Submission

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CONTENT_TYPES: dict[str, str] = {
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json-lines": "jsonl",
    "text/csv": "csv",
    "application/csv": "csv",
    XLSX_TYPE: "xlsx",
}
EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".xlsx": "xlsx",
}
FIELDS = ("kind", "channel", "locality", "text", "submitted_at", "source_ref")
REPORTER_COLUMNS = {
    "reporter_name": "name",
    "reporter_phone": "phone",
    "reporter_address": "address",
}
REQUIRED_COLUMNS = ("kind", "channel", "locality", "text")
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# One CSV record, all its lines: far above a submission (text <= 20,000 chars), and not
# above the csv module's default field limit, so that limit is never the one that trips.
MAX_CSV_RECORD_CHARS = 128 * 1024


@dataclass(frozen=True)
class Row:
    """One data row: submission-shaped fields, or why the row could not even be read."""

    number: int
    fields: dict[str, Any] | None
    error: str | None = None
    detail: Any = None


@dataclass
class ImportResult:
    """Per-row results of one import."""

    results: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    interrupted: str | None = None

    def ok(self, row: int, rec_id: str, *, duplicate: bool) -> None:
        """A row is on the bus (now or earlier)."""
        entry: dict[str, Any] = {"row": row, "id": rec_id}
        if duplicate:
            entry["duplicate"] = True
        self.results.append(entry)
        self.accepted += 1

    def fail(self, row: int, error: str, detail: Any) -> None:
        """A row was rejected."""
        self.results.append({"row": row, "error": error, "detail": detail})
        self.rejected += 1

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        self.results.sort(key=lambda r: r["row"])
        body: dict[str, Any] = {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "results": self.results,
        }
        if self.interrupted:
            body["error"] = self.interrupted
            body["detail"] = "import interrupted; rows after the last result were not read"
        return body


def detect_format(*, explicit: str | None, content_type: str | None, filename: str | None) -> str:
    """`?format=`, else the file name's extension, else the content type."""
    if explicit:
        if explicit not in ("jsonl", "csv", "xlsx"):
            raise UnsupportedMediaTypeError("unsupported_format", explicit)
        return explicit
    if filename:
        fmt = EXTENSIONS.get(Path(filename).suffix.lower())
        if fmt:
            return fmt
    media = (content_type or "").split(";")[0].strip().lower()
    if media in CONTENT_TYPES:
        return CONTENT_TYPES[media]
    raise UnsupportedMediaTypeError(
        "unsupported_format",
        f"send JSON lines, CSV or XLSX (Content-Type or ?format=), not {media or 'nothing'}",
    )


# --------------------------------------------------------------------------- readers


async def limited(chunks: AsyncIterator[bytes], *, max_bytes: int) -> AsyncIterator[bytes]:
    """Pass chunks through, refusing more than `max_bytes` in total."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLargeError("payload_too_large", f"more than {max_bytes} bytes")
        yield chunk


async def text_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """UTF-8 lines (line endings kept), BOM removed, decoded incrementally."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    try:
        async for chunk in chunks:
            pending += decoder.decode(chunk)
            # Split on "\n" only: JSON strings may hold U+2028 and the like.
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InvalidInputError("bad_encoding", "the file must be UTF-8") from exc
    if pending:
        yield pending


async def jsonl_rows(chunks: AsyncIterator[bytes]) -> AsyncIterator[Row]:
    """One row per non-blank line."""
    number = 0
    async for line in text_lines(chunks):
        number += 1
        if not line.strip():
            continue
        try:
            obj = textpolicy.loads(line)
        except textpolicy.JsonPolicyError as exc:
            reason = "bad_json" if exc.reason == "invalid_json" else exc.reason
            yield Row(number, None, reason, exc.detail)
            continue
        if not isinstance(obj, dict):
            yield Row(number, None, "invalid_row", "each line must be a JSON object")
            continue
        yield Row(number, _from_mapping(obj))


class CsvRecordTooLongError(Exception):
    """A CSV record outgrew `MAX_CSV_RECORD_CHARS` (usually a quote that is never closed)."""


class CsvLines:
    """The physical lines of a text stream, fed to `csv.reader`, counting the record's size.

    Lines are read with a size limit, so one huge line or quoted field is refused once it
    passes the limit instead of being held in memory whole.
    """

    def __init__(self, stream: TextIO, *, max_chars: int) -> None:
        self._stream = stream
        self._max_chars = max_chars
        self._used = 0
        self._back: str | None = None
        self.eof = False

    def start_record(self) -> None:
        """The next line read starts a new record."""
        self._used = 0

    def push_back(self, line: str) -> None:
        """Have `line` read again next."""
        self._back = line

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._back is not None:
            line, self._back = self._back, None
        else:
            line = self._stream.readline(self._max_chars - self._used + 1)
        if not line:
            self.eof = True
            raise StopIteration
        self._used += len(line)
        if self._used > self._max_chars:
            raise CsvRecordTooLongError
        return line


def csv_rows(path: Path) -> Iterator[Row]:
    """Rows of a CSV file with a header row (delimiter `,`, `;` or tab, as exported); blocking.

    Linear in the file's size: the file is decoded as a stream and parsed by `csv.reader`.
    """
    with path.open(encoding="utf-8-sig", newline="") as stream:
        try:
            yield from _csv_stream_rows(CsvLines(stream, max_chars=MAX_CSV_RECORD_CHARS))
        except UnicodeDecodeError as exc:
            raise InvalidInputError("bad_encoding", "the file must be UTF-8") from exc


def _csv_stream_rows(lines: CsvLines) -> Iterator[Row]:
    number = 0  # the row (record) being read, as a spreadsheet numbers it
    try:
        while True:  # blank lines before the header still count as rows
            lines.start_record()
            number += 1
            first = next(lines, None)
            if first is None:
                raise InvalidInputError("missing_columns", "the file has no header row")
            if first.strip():
                break
        lines.push_back(first)
        number -= 1
        delimiter = max((",", ";", "\t"), key=first.count)
        # strict: a quote never closed ends as an error, not as a field holding the rest.
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        columns: list[str] | None = None
        while True:
            lines.start_record()
            number += 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                detail = "a quoted field is never closed" if lines.eof else str(exc)
                if columns is None:
                    raise InvalidInputError("bad_csv", f"header row: {detail}") from exc
                yield Row(number, None, "bad_csv", detail)
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns = _header(cells)
                continue
            yield Row(number, _from_cells(columns, cells))
        if columns is None:
            raise InvalidInputError("missing_columns", "the file has no header row")
    except CsvRecordTooLongError:
        raise InvalidInputError(
            "csv_record_too_long",
            f"row {number} is longer than {MAX_CSV_RECORD_CHARS} characters"
            " (is a quote left open?)",
        ) from None


def xlsx_rows(path: Path) -> Iterator[Row]:
    """Rows of the first sheet of an XLSX workbook, read in streaming (read-only) mode."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # a bad file fails in openpyxl in many ways: zip, XML, keys...
        raise _invalid_xlsx(exc) from exc
    try:
        sheet = workbook.worksheets[0]
        columns: list[str] | None = None
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell(v) for v in values]
            if not any(cells):
                continue
            if columns is None:
                columns = _header(cells)
                continue
            yield Row(number, _from_cells(columns, cells))
        if columns is None:
            raise InvalidInputError("missing_columns", "the sheet has no header row")
    except IngestError:
        raise
    except Exception as exc:  # ...and so can reading a sheet of it, part way through
        raise _invalid_xlsx(exc) from exc
    finally:
        workbook.close()


def _invalid_xlsx(exc: Exception) -> InvalidInputError:
    return InvalidInputError(
        "invalid_xlsx", f"not a readable XLSX workbook: {type(exc).__name__}: {exc}"[:300]
    )


async def spooled(chunks: AsyncIterator[bytes], *, suffix: str) -> Path:
    """Write a body to a temporary file, off the event loop (XLSX is a zip: random access)."""
    handle = tempfile.NamedTemporaryFile(prefix="phoihop-bulk-", suffix=suffix, delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return path


async def in_thread(rows: Iterator[Row], *, batch: int = 200) -> AsyncIterator[Row]:
    """Iterate a blocking row generator from a worker thread, a batch at a time."""

    def take() -> tuple[list[Row], IngestError | None]:
        chunk: list[Row] = []
        try:
            for row in islice(rows, batch):
                chunk.append(row)
        except IngestError as exc:  # the rows read before the fault still count
            return chunk, exc
        return chunk, None

    while True:
        chunk, error = await asyncio.to_thread(take)
        for row in chunk:
            yield row
        if error is not None:
            raise error
        if not chunk:
            return


def _header(cells: list[Any]) -> list[str]:
    columns = [str(c or "").strip().lstrip("\ufeff").lower().replace(" ", "_") for c in cells]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidInputError(
            "missing_columns", f"header row lacks {', '.join(missing)} (found {columns})"
        )
    return columns


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    text = str(value).strip()
    return text or None


def _from_cells(columns: list[str], cells: list[Any]) -> dict[str, Any]:
    values = {
        name: _cell(cell)
        for name, cell in zip(columns, cells, strict=False)
        if name and _cell(cell) is not None
    }
    return _from_mapping(values)


def _from_mapping(obj: dict[str, Any]) -> dict[str, Any]:
    """Submission-shaped fields; columns that are not submission fields are ignored."""
    fields = {k: obj[k] for k in FIELDS if obj.get(k) is not None}
    if isinstance(fields.get("submitted_at"), str):
        match = _DMY.match(fields["submitted_at"])
        if match:  # spreadsheets in Vietnamese locale write dd/mm/yyyy
            day, month, year = (int(g) for g in match.groups())
            fields["submitted_at"] = f"{year:04d}-{month:02d}-{day:02d}"
    reporter = obj.get("reporter")
    if reporter is None:
        flat = {
            target: obj[column]
            for column, target in REPORTER_COLUMNS.items()
            if obj.get(column) not in (None, "")
        }
        reporter = flat or None
    if reporter is not None:
        fields["reporter"] = reporter
    return fields


# --------------------------------------------------------------------------- import


async def run_import(
    *,
    rows: AsyncIterator[Row],
    agency: str,
    batch_key: str | None,
    reference: Reference,
    max_text_chars: int,
    max_rows: int,
    batch_size: int,
    publisher: Publisher,
    store: IdempotencyStore,
    cipher: PiiCipher,
    metrics: IngestMetrics,
) -> ImportResult:
    """Validate rows as they stream in; put valid ones on the bus batch by batch."""
    result = ImportResult()
    batch: list[tuple[int, Pending]] = []

    async def flush() -> None:
        if not batch:
            return
        outcomes = await submit_many(
            items=[p for _, p in batch], publisher=publisher, store=store, cipher=cipher
        )
        for (number, _), outcome in zip(batch, outcomes, strict=True):
            if outcome.id is not None:
                result.ok(number, outcome.id, duplicate=outcome.duplicate)
                metrics.count("duplicate" if outcome.duplicate else "accepted")
            else:
                result.fail(number, outcome.error or "rejected", outcome.detail)
                metrics.count("rejected")
        batch.clear()

    count = 0
    try:
        async for row in rows:
            count += 1
            if count > max_rows:
                raise PayloadTooLargeError("too_many_rows", f"more than {max_rows} rows")
            if row.fields is None:
                result.fail(row.number, row.error or "invalid_row", row.detail)
                metrics.count("rejected")
                continue
            try:
                submission: Submission = validate_submission(
                    payload=row.fields, reference=reference, max_text_chars=max_text_chars
                )
            except InvalidInputError as exc:
                result.fail(row.number, exc.reason, exc.detail)
                metrics.count("rejected")
                continue
            key = submission.source_ref or (f"bulk:{batch_key}:{row.number}" if batch_key else None)
            if key is not None and len(key) > MAX_KEY_CHARS:
                key = key[:MAX_KEY_CHARS]
            batch.append((row.number, Pending(submission=submission, agency=agency, key=key)))
            if len(batch) >= batch_size:
                await flush()
        await flush()
    except UnavailableError as exc:
        _unavailable(result, batch, exc, metrics)
    except IngestError as exc:
        if not result.results and not batch:
            raise
        # Rows before the fault stand: put the valid ones on the bus and say where it stopped.
        try:
            await flush()
        except UnavailableError as unavailable:
            _unavailable(result, batch, unavailable, metrics)
        else:
            result.interrupted = exc.reason
    return result


def _unavailable(
    result: ImportResult,
    batch: list[tuple[int, Pending]],
    exc: UnavailableError,
    metrics: IngestMetrics,
) -> None:
    """The rows of the unacknowledged batch are not imported: say so row by row."""
    for number, _pending in batch:
        result.fail(number, exc.reason, "not acknowledged by the broker; send the row again")
    metrics.count("unavailable", len(batch))
    result.interrupted = exc.reason
