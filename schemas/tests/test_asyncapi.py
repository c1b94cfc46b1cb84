"""The AsyncAPI document: accepted by the official parser, self-contained, examples true."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from phoihop_common.dlq import dead_letter_message
from phoihop_ingest import idempotency, validation
from phoihop_ingest.consumer import inbound_key
from phoihop_schemas import codec, export
from phoihop_schemas.events import InboundSubmission, Kind
from phoihop_schemas.topics import ALL_TOPICS, INBOUND_SUBMISSIONS, Role

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "schemas" / "generated"
NODE_DIR = ROOT / "tests" / "contracts" / "node"
DOC_URI = "urn:phoihop:asyncapi"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads((GENERATED / "asyncapi.json").read_text("utf-8"))


def _validator(doc: dict[str, Any], ref: str) -> jsonschema.Draft7Validator:
    """A draft-07 validator (AsyncAPI Schema is its superset) of one in-document ref."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator(
        {"$ref": f"{DOC_URI}{ref}"},
        registry=registry,
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _examples(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, message in doc["components"]["messages"].items():
        for example in message["examples"]:
            yield name, message, example


def _record_of(example: dict[str, Any]) -> codec.Record:
    headers = [(k, v.encode()) for k, v in example["headers"].items()]
    return codec.Record(key=None, value=json.dumps(example["payload"]).encode(), headers=headers)


# --------------------------------------------------------------------------- the parser


def _node_or_skip() -> str:
    """`node`, with the parser installed; skip locally without them, fail in CI."""
    node = shutil.which("node")
    installed = (NODE_DIR / "node_modules" / "@asyncapi" / "parser").is_dir()
    if node is not None and installed:
        return node
    problem = (
        "node is not on PATH"
        if node is None
        else f"{NODE_DIR / 'node_modules'} is missing: run `npm ci` in {NODE_DIR}"
    )
    if os.environ.get("CI", "").lower() in ("", "0", "false"):
        pytest.skip(f"{problem} (fails when CI is set)")
    pytest.fail(f"the AsyncAPI parser check cannot run in CI: {problem}")


def _parse(node: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, "validate-asyncapi.mjs", str(path)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_official_parser_accepts_the_document_without_errors_or_warnings() -> None:
    result = _parse(_node_or_skip(), GENERATED / "asyncapi.json")
    assert result.returncode == 0, f"@asyncapi/parser:\n{result.stdout}\n{result.stderr}"
    assert "0 error(s), 0 warning(s)" in result.stdout


def test_official_parser_check_fails_on_a_dangling_ref(doc: dict[str, Any], tmp_path: Path) -> None:
    node = _node_or_skip()
    broken = json.loads(json.dumps(doc))
    broken["components"]["schemas"]["Received"]["properties"]["kind"] = {"$ref": "#/$defs/Kind"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), "utf-8")
    result = _parse(node, path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "invalid-ref" in result.stdout


# --------------------------------------------------------------------------- structure


def test_every_ref_points_inside_the_document(doc: dict[str, Any]) -> None:
    refs = set(_refs(doc))
    assert refs
    outside = sorted(r for r in refs if not r.startswith("#/"))
    assert not outside
    for ref in refs:
        _resolve(doc, ref)
    assert "$defs" not in json.dumps(doc)


def test_channels_are_the_registrys_contract_topics(doc: dict[str, Any]) -> None:
    addresses = {c["address"] for c in doc["channels"].values()}
    public = {t.name for t in ALL_TOPICS if t.role is not Role.INTERNAL}
    assert addresses == public
    actions = {
        doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"]: op["action"]
        for op in doc["operations"].values()
    }
    for topic in ALL_TOPICS:
        if topic.role is Role.INBOUND:
            assert actions[topic.name] == "send"
        elif topic.role is not Role.INTERNAL:
            assert actions[topic.name] == "receive"


def test_servers_embedded_and_production_with_sasl_ssl(doc: dict[str, Any]) -> None:
    servers = doc["servers"]
    assert servers["embedded"]["host"] == "127.0.0.1:9092"
    assert servers["embedded"]["protocol"] == "kafka"
    assert servers["production"]["protocol"] == "kafka-secure"
    [scheme] = servers["production"]["security"]
    assert _resolve(doc, scheme["$ref"])["type"] == "scramSha512"


def test_submission_message_documents_the_rules(doc: dict[str, Any]) -> None:
    text = doc["components"]["messages"]["inbound_submission"]["description"]
    for needle in (
        str(codec.MAX_MESSAGE_BYTES),
        "`khieu_nai`",
        "`to_cao`",
        "admin_units.yaml",
        "submitted_by",
        str(codec.SUBMISSION_ID_NAMESPACE),
        "ce:<ce_id header>",
    ):
        assert needle in text


# --------------------------------------------------------------------------- examples


def test_every_message_has_examples_valid_against_its_schemas(doc: dict[str, Any]) -> None:
    seen = set()
    for name, message, example in _examples(doc):
        seen.add(name)
        for part in ("payload", "headers"):
            ref = message[part].get("$ref")
            validator = (
                _validator(doc, ref)
                if ref
                else _validator(doc, f"#/components/messages/{name}/{part}")
            )
            errors = [e.message for e in validator.iter_errors(example[part])]
            assert not errors, f"{example['name']} {part}: {errors}"
    assert seen == set(doc["components"]["messages"])


def test_examples_are_what_the_codec_sends_and_decodes(doc: dict[str, Any]) -> None:
    for name, message, example in _examples(doc):
        if name == "dead_letter":
            continue
        envelope = codec.decode(
            value=_record_of(example).value, headers=_record_of(example).headers
        )
        assert envelope.type == message["title"]
        again = codec.encode(
            envelope.data, source=envelope.source, event_id=envelope.id, time=envelope.time
        )
        assert {k: v.decode() for k, v in again.headers} == example["headers"]
        assert json.loads(again.value) == example["payload"]
    texts = [e["payload"].get("text", "") for _, _, e in _examples(doc)]
    assert any("đường liên thôn" in t for t in texts)


def test_dead_letter_example_carries_a_real_decode_failure(doc: dict[str, Any]) -> None:
    [example] = doc["components"]["messages"]["dead_letter"]["examples"]
    record = _record_of(example)
    with pytest.raises(codec.DecodeError) as info:
        codec.decode(value=record.value, headers=record.headers)
    assert example["headers"]["dlq_reason"] == info.value.reason
    assert example["headers"]["dlq_topic"] == INBOUND_SUBMISSIONS.name


def test_received_example_has_the_id_ingest_derives_for_the_submission(
    doc: dict[str, Any],
) -> None:
    assert export.MAX_IDEMPOTENCY_KEY_CHARS == idempotency.MAX_KEY_CHARS
    messages = doc["components"]["messages"]
    submission = messages["inbound_submission"]["examples"][0]
    received = messages["received"]["examples"][0]
    model = InboundSubmission.model_validate(submission["payload"])
    key = inbound_key(model, submission["headers"]["ce_id"])
    rec_id = idempotency.recommendation_id(agency=model.submitted_by, key=key)
    assert rec_id == export.submission_id(agency=model.submitted_by, key=key)
    assert received["payload"]["recommendation_id"] == rec_id
    assert received["headers"]["ce_subject"] == rec_id


def test_documented_rules_match_ingest_and_the_sample_province() -> None:
    assert set(export.REPORTER_REQUIRED_KINDS) == set(validation.REPORTER_REQUIRED)
    assert Kind.TO_CAO in export.REPORTER_REQUIRED_KINDS
    units = yaml.safe_load((ROOT / "deploy" / "config" / "admin_units.yaml").read_text("utf-8"))
    assert tuple(u["code"] for u in units["units"]) == export.SAMPLE_LOCALITIES


# --------------------------------------------------------------------------- headers


def test_codec_headers_match_the_header_schemas(doc: dict[str, Any]) -> None:
    generic = json.loads((GENERATED / "jsonschema" / "cloudevents_headers.json").read_text())
    for name, message, example in _examples(doc):
        if name == "dead_letter":
            continue
        jsonschema.validate(example["headers"], generic)
        other = dict(example["headers"], ce_type="vn.phoihop.other.v1")
        with pytest.raises(jsonschema.ValidationError):
            _validator(doc, message["headers"]["$ref"]).validate(other)
        if name not in ("inbound_submission", "inbound_response", "notification_outcome"):
            missing = {k: v for k, v in example["headers"].items() if k != "ce_sequence"}
            with pytest.raises(jsonschema.ValidationError):
                _validator(doc, message["headers"]["$ref"]).validate(missing)


@pytest.mark.parametrize("size", [100, codec.MAX_MESSAGE_BYTES + 1])
def test_dead_letter_records_match_the_dead_letter_schemas(doc: dict[str, Any], size: int) -> None:
    message = dead_letter_message(
        reason="bad_json",
        detail="Expecting value: line 1 column 1 (char 0)",
        topic="phoihop.inbound.submissions",
        partition=3,
        offset=42,
        service="ingest",
        key=b"k",
        value=b"x" * size,
        headers=[("ce_type", b"vn.phoihop.inbound.submission.v1")],
    )
    headers = {k: v.decode() for k, v in message.headers}
    dlq = doc["components"]["messages"]["dead_letter"]
    _validator(doc, dlq["headers"]["$ref"]).validate(headers)
    generated = json.loads((GENERATED / "jsonschema" / "dead_letter_headers.json").read_text())
    jsonschema.validate(headers, generated)
    if size > codec.MAX_MESSAGE_BYTES:
        assert headers["dlq_value_truncated"] == "1"
        _validator(doc, "#/components/schemas/DeadLetterSummary").validate(
            json.loads(message.value)
        )


def _reasons_in(path: Path) -> Iterator[str]:
    """Literal dead-letter reasons written by the code of one file."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name == "check_submission":
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and _name(call) == "InvalidInputError":
                    yield from _constant(call.args[:1])
        if not isinstance(node, ast.Call):
            continue
        name = _name(node)
        if name in ("DecodeError", "RejectedError"):
            yield from _constant(node.args[:1])
        elif name == "Reject":
            yield from _constant(node.args[1:2])
        elif name in ("dead_letter", "Outcome"):
            for kw in node.keywords:
                if kw.arg in ("reason", "error"):
                    yield from _constant([kw.value])


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _constant(nodes: list[ast.expr]) -> Iterator[str]:
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def test_every_dead_letter_reason_in_the_code_is_documented(doc: dict[str, Any]) -> None:
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("schemas/src/**/*.py")]
    found = {r for path in sources for r in _reasons_in(path)}
    found |= set(codec.JSON_REASONS.values())
    assert {"schema_violation", "reporter_required", "key_mismatch"} <= found
    undocumented = sorted(found - set(export.DEAD_LETTER_REASONS))
    assert not undocumented, f"add to export.DEAD_LETTER_REASONS: {undocumented}"
    dlq = doc["components"]["schemas"]["DeadLetterHeaders"]["properties"]
    assert all(f"`{r}`" in dlq["dlq_reason"]["description"] for r in found)
