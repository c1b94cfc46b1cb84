"""Check a labelled corpus file against LABELING.md (record format, §1-§2 label rules, §9 checks).

    python corpus/check.py corpus/written.jsonl [corpus/dev.jsonl ...]
    python corpus/check.py corpus/written.jsonl --against corpus/dev.jsonl   # §9 cross-set checks
    options: --config-dir DIR (default: deploy/config next to this folder), --strict

Errors (exit status 1): a line that does not parse or lacks a field; ids not unique / not
sequential; an unknown kind, channel, locality, category, level or agency code; an agency that
does not follow the level rule of §2 (KHAC -> tinh/TT_HDND); a date outside 2026-01..2026-10;
a `khieu_nai`/`to_cao` without a reporter, or a reporter whose phone is not 09 + 8 digits; a
group with fewer than 2 or more than 4 members, with differing `expected` labels, or spread
over several communes at level `xa`; text (or reporter) not NFC; a line written with
`ensure_ascii=True`.

Warnings (printed, exit 0 unless --strict): a group spread over several communes at level
`tinh` (allowed only for a province-wide concern about a provincial rule or programme; review
by hand); a `to_cao` grouped with another kind or commune (the evaluator withholds such pairs);
kind/channel combinations §5 does not describe; a `kien_nghi` with a reporter.

With --against OTHER: no shared text or sentence, no shared run of 7 words other than the
report opener "Cử tri <đơn vị> đề nghị", no shared reporter (name or phone).

Needs only the standard library and PyYAML.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import unicodedata
from collections import defaultdict
from pathlib import Path

import yaml

KINDS = {"kien_nghi", "phan_anh", "khieu_nai", "to_cao", "tiep_cong_dan"}
CHANNELS = {"tiep_xuc_cu_tri", "ubmttq_tong_hop", "tiep_cong_dan", "don_thu", "cong_thong_tin"}
LEVELS = {"xa", "tinh", "trung_uong"}
FIELDS = {
    "id",
    "kind",
    "channel",
    "locality",
    "submitted_at",
    "text",
    "reporter",
    "expected",
    "duplicate_group",
}
EXPECTED_FIELDS = {"category", "level", "agency"}
REPORTER_FIELDS = {"name", "phone", "address"}
PHONE = re.compile(r"^09\d{8}$")
GROUP = re.compile(r"^G([1-9]\d*)$")
ID = re.compile(r"^([A-Z]+)(\d+)$")
# §5: how each kind usually arrives (anything else is a warning)
KIND_CHANNELS = {
    "kien_nghi": {"tiep_xuc_cu_tri", "ubmttq_tong_hop"},
    "phan_anh": {"cong_thong_tin", "ubmttq_tong_hop"},
    "khieu_nai": {"don_thu"},
    "to_cao": {"don_thu"},
    "tiep_cong_dan": {"tiep_cong_dan"},
}
NATIONAL_AGENCY = "DOAN_DBQH"
TRIAGE = ("KHAC", "tinh", "TT_HDND")
NGRAM = 7
OPENER_VERBS = {("đề", "nghị"), ("kiến", "nghị"), ("phản", "ánh")}


class Reference:
    """Codes from deploy/config."""

    def __init__(self, config_dir: Path) -> None:
        def load(name: str) -> dict:
            with (config_dir / name).open(encoding="utf-8") as fh:
                return yaml.safe_load(fh)

        cats = load("categories.yaml")["categories"]
        self.category_agency = {c["code"]: c["agency"] for c in cats}
        self.agencies = {a["code"] for a in load("agencies.yaml")["agencies"]}
        self.units = {u["code"] for u in load("admin_units.yaml")["units"]}

    @staticmethod
    def commune_agency(locality: str) -> str:
        return "UBND_XA_" + locality.upper().replace("-", "_")

    def agency_exists(self, code: str) -> bool:
        return code in self.agencies or any(code == self.commune_agency(u) for u in self.units)

    def expected_agency(self, category: str, level: str, locality: str) -> str | None:
        if category == "KHAC":
            return TRIAGE[2]
        if level == "xa":
            return self.commune_agency(locality)
        if level == "trung_uong":
            return NATIONAL_AGENCY
        if level == "tinh":
            return self.category_agency.get(category)
        return None


class Report:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, where: str, msg: str) -> None:
        self.errors.append(f"{self.path}:{where}: {msg}")

    def warn(self, where: str, msg: str) -> None:
        self.warnings.append(f"{self.path}:{where}: {msg}")


def _nfc(value: str) -> bool:
    return unicodedata.is_normalized("NFC", value)


def check_file(path: Path, ref: Reference) -> tuple[Report, list[dict]]:
    rep = Report(path)
    records: list[dict] = []
    try:
        raw = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        rep.error("0", f"cannot read as UTF-8: {exc}")
        return rep, records
    for number, line in enumerate(raw.splitlines(), start=1):
        where = str(number)
        if not line.strip():
            rep.error(where, "empty line")
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            rep.error(where, f"not JSON: {exc}")
            continue
        if not isinstance(doc, dict):
            rep.error(where, "not a JSON object")
            continue
        if "\\u" in line:
            rep.error(where, "written with ensure_ascii=True (\\u escapes)")
        if not _nfc(line):
            rep.error(where, "line is not NFC-normalised")
        rid = doc.get("id")
        where = f"{number}:{rid}"
        missing, extra = FIELDS - doc.keys(), doc.keys() - FIELDS
        if missing:
            rep.error(where, f"missing fields {sorted(missing)}")
            continue
        if extra:
            rep.error(where, f"unknown fields {sorted(extra)}")
        doc["_line"] = number
        records.append(doc)
        _check_record(doc, where, ref, rep)
    _check_ids(records, rep)
    _check_groups(records, rep)
    return rep, records


def _check_record(doc: dict, where: str, ref: Reference, rep: Report) -> None:
    kind, channel, loc = doc["kind"], doc["channel"], doc["locality"]
    if kind not in KINDS:
        rep.error(where, f"unknown kind {kind!r}")
    if channel not in CHANNELS:
        rep.error(where, f"unknown channel {channel!r}")
    if kind in KIND_CHANNELS and channel in CHANNELS and channel not in KIND_CHANNELS[kind]:
        rep.warn(where, f"kind {kind} arriving by channel {channel} (§5 does not describe it)")
    if loc not in ref.units:
        rep.error(where, f"locality {loc!r} is not a unit of admin_units.yaml")
    try:
        day = dt.date.fromisoformat(doc["submitted_at"])
        if not (dt.date(2026, 1, 1) <= day <= dt.date(2026, 10, 31)):
            rep.error(where, f"submitted_at {day} outside 2026-01..2026-10")
    except (TypeError, ValueError):
        rep.error(where, f"submitted_at {doc['submitted_at']!r} is not a YYYY-MM-DD date")
    text = doc["text"]
    if not isinstance(text, str) or not text.strip():
        rep.error(where, "empty text")
    elif not _nfc(text):
        rep.error(where, "text is not NFC")

    reporter = doc["reporter"]
    if reporter is None:
        if kind in ("khieu_nai", "to_cao"):
            rep.error(where, f"{kind} without a reporter")
    elif not isinstance(reporter, dict) or set(reporter) != REPORTER_FIELDS:
        rep.error(where, f"reporter must be null or have exactly {sorted(REPORTER_FIELDS)}")
    else:
        if not isinstance(reporter["phone"], str) or not PHONE.match(reporter["phone"]):
            rep.error(where, f"reporter phone {reporter['phone']!r} is not 09 + 8 digits")
        for key in ("name", "address"):
            value = reporter[key]
            if not isinstance(value, str) or not value.strip():
                rep.error(where, f"reporter {key} empty")
            elif not _nfc(value):
                rep.error(where, f"reporter {key} is not NFC")
        if kind == "kien_nghi":
            rep.warn(where, "kien_nghi with a reporter (§5: reporter null)")

    exp = doc["expected"]
    if not isinstance(exp, dict) or set(exp) != EXPECTED_FIELDS:
        rep.error(where, f"expected must have exactly {sorted(EXPECTED_FIELDS)}")
        return
    cat, level, agency = exp["category"], exp["level"], exp["agency"]
    ok = True
    if cat not in ref.category_agency:
        rep.error(where, f"unknown category {cat!r}")
        ok = False
    if level not in LEVELS:
        rep.error(where, f"unknown level {level!r}")
        ok = False
    if not ref.agency_exists(agency):
        rep.error(where, f"unknown agency {agency!r}")
        ok = False
    if cat == "KHAC" and level != "tinh":
        rep.error(where, "KHAC must be level tinh (§4)")
    if ok:
        want = ref.expected_agency(cat, level, loc)
        if agency != want:
            rep.error(where, f"agency {agency} breaks the §2 rule for {cat}/{level}: want {want}")

    group = doc["duplicate_group"]
    if group is not None and (not isinstance(group, str) or not GROUP.match(group)):
        rep.error(where, f"duplicate_group {group!r} is not null or G<n>")


def _check_ids(records: list[dict], rep: Report) -> None:
    prefixes, numbers, widths = set(), [], set()
    seen: set[str] = set()
    for doc in records:
        rid = doc["id"]
        where = f"{doc['_line']}:{rid}"
        if rid in seen:
            rep.error(where, "duplicate id")
        seen.add(rid)
        m = ID.match(str(rid))
        if not m:
            rep.error(where, "id is not <LETTERS><digits>")
            continue
        prefixes.add(m.group(1))
        widths.add(len(m.group(2)))
        numbers.append(int(m.group(2)))
    if len(prefixes) > 1:
        rep.error("ids", f"mixed id prefixes {sorted(prefixes)}")
    if len(widths) > 1:
        rep.error("ids", f"mixed id widths {sorted(widths)}")
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        first_bad = next(i for i, n in enumerate(numbers, 1) if n != i)
        rep.error("ids", f"ids are not sequential from 1 (first break at record {first_bad})")


def _check_groups(records: list[dict], rep: Report) -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    for doc in records:
        g = doc["duplicate_group"]
        if isinstance(g, str) and GROUP.match(g):
            groups[g].append(doc)
    numbers = sorted(int(GROUP.match(g).group(1)) for g in groups)  # type: ignore[union-attr]
    if numbers != list(range(1, len(numbers) + 1)):
        rep.error("groups", f"group numbers are not 1..{len(numbers)} without gaps")
    for g, members in sorted(groups.items(), key=lambda kv: int(kv[0][1:])):
        ids = ",".join(m["id"] for m in members)
        if not 2 <= len(members) <= 4:
            rep.error(g, f"{len(members)} members ({ids}); a group holds 2-4")
        labels = {json.dumps(m["expected"], sort_keys=True) for m in members}
        if len(labels) > 1:
            rep.error(g, f"members {ids} do not share labels: {sorted(labels)}")
            continue
        level = members[0]["expected"]["level"]
        localities = sorted({m["locality"] for m in members})
        if len(localities) > 1:
            if level == "xa":
                rep.error(g, f"commune-level group spread over {localities} ({ids})")
            elif level == "tinh":
                rep.warn(
                    g,
                    f"provincial group spread over {localities} ({ids}): allowed only for a "
                    "province-wide concern about a provincial rule or programme",
                )
        kinds = {m["kind"] for m in members}
        if "to_cao" in kinds and (len(kinds) > 1 or len(localities) > 1):
            rep.warn(g, f"to_cao grouped with another kind or commune ({ids}); eval withholds it")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFC", text).lower())


def _sentences(text: str) -> set[str]:
    parts = re.split(r"(?<=[.!?;])\s+", text)
    return {" ".join(_words(p)) for p in parts if len(_words(p)) >= 4}


def _without_opener(words: list[str]) -> list[str]:
    """Drop the report opener "Cử tri <đơn vị> đề nghị" (runs inside it may be shared);
    the opener ends at the first "đề nghị", "kiến nghị" or "phản ánh"."""
    if words[:2] != ["cử", "tri"]:
        return words
    for i in range(2, min(len(words) - 1, 16)):
        if (words[i], words[i + 1]) in OPENER_VERBS:
            return words[i + 2 :]
    return words


def check_against(path: Path, records: list[dict], other: Path, rep: Report) -> None:
    try:
        others = [
            json.loads(line) for line in other.read_text(encoding="utf-8").splitlines() if line
        ]
    except (OSError, ValueError) as exc:
        rep.error("against", f"cannot read {other}: {exc}")
        return
    grams: dict[tuple[str, ...], str] = {}
    sentences: dict[str, str] = {}
    texts = {}
    names, phones = {}, {}
    for doc in others:
        w = _words(doc["text"])
        body = _without_opener(w)
        for i in range(len(body) - NGRAM + 1):
            grams.setdefault(tuple(body[i : i + NGRAM]), doc["id"])
        for s in _sentences(doc["text"]):
            sentences.setdefault(s, doc["id"])
        texts[" ".join(w)] = doc["id"]
        if doc.get("reporter"):
            names[doc["reporter"]["name"].lower()] = doc["id"]
            phones[doc["reporter"]["phone"]] = doc["id"]
    for doc in records:
        where = f"{doc['_line']}:{doc['id']}"
        w = _words(doc["text"])
        if " ".join(w) in texts:
            rep.error(where, f"same text as {other.name} {texts[' '.join(w)]}")
            continue
        for s in _sentences(doc["text"]):
            if s in sentences:
                rep.error(where, f"shares a sentence with {other.name} {sentences[s]}: {s!r}")
        hits = set()
        body = _without_opener(w)
        for i in range(len(body) - NGRAM + 1):
            gram = tuple(body[i : i + NGRAM])
            if gram in grams:
                hits.add((grams[gram], " ".join(gram)))
        for oid, gram in sorted(hits)[:3]:
            rep.error(where, f"shares a {NGRAM}-word run with {other.name} {oid}: {gram!r}")
        r = doc.get("reporter")
        if r and (r["name"].lower() in names or r["phone"] in phones):
            oid = names.get(r["name"].lower()) or phones.get(r["phone"])
            rep.error(where, f"shares a reporter with {other.name} {oid}")


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--config-dir", type=Path, default=here.parent / "deploy" / "config")
    parser.add_argument("--against", type=Path, action="append", default=[])
    parser.add_argument("--strict", action="store_true", help="warnings count as errors")
    args = parser.parse_args(argv)
    ref = Reference(args.config_dir)
    failed = False
    for path in args.files:
        rep, records = check_file(path, ref)
        for other in args.against:
            if other.resolve() != path.resolve():
                check_against(path, records, other, rep)
        for line in rep.errors:
            print(f"ERROR {line}")
        for line in rep.warnings:
            print(f"warn  {line}")
        bad = bool(rep.errors) or (args.strict and bool(rep.warnings))
        failed |= bad
        groups = {d["duplicate_group"] for d in records if d["duplicate_group"]}
        status = "FAIL" if bad else "ok"
        print(
            f"{status}: {path}: {len(records)} records, {len(groups)} groups, "
            f"{len(rep.errors)} errors, {len(rep.warnings)} warnings"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
