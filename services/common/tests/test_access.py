"""The one access policy: its table, its invariants, and the README's copy of it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from phoihop_common import access
from phoihop_common.access import Case, Relation, Resource, readable
from phoihop_common.config import ConfigError, load_reference
from phoihop_schemas.events import ResponseAction

README = Path(__file__).resolve().parents[3] / "README.md"
READS = frozenset({Resource.STATUS, Resource.TEXT, Resource.TRAIL, Resource.ANSWERS})


def test_readme_table_is_the_policy(config_dir: Path) -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- access-matrix:start[^>]*-->\n(.*?)<!-- access-matrix:end -->", text, re.S
    )
    assert found, "README has no access matrix section"
    assert found.group(1) == access.matrix_markdown(load_reference(config_dir))


def test_the_rules_of_the_issue(config_dir: Path) -> None:
    ref = load_reference(config_dir)
    x = Case(
        kind="to_cao",
        submitted_by="UBMTTQ_TINH",
        assignee="THANH_TRA_TINH",
        past_assignees=frozenset({"SO_Y_TE"}),
        sources=frozenset({"SO_XAY_DUNG"}),
    )
    ordinary = Case(kind="kien_nghi", submitted_by="SO_NN_MT", assignee="SO_Y_TE")

    def can(agency: str, case: Case) -> frozenset[Resource]:
        return readable(ref, agency=agency, case=case)

    assert can("SO_XAY_DUNG", x) == frozenset()  # a source: the merge opens nothing
    assert can("SO_GD_DT", x) == frozenset()  # uninvolved
    assert Resource.REPORTER in can("THANH_TRA_TINH", x)  # the body settling it
    assert Resource.REPORTER in can("UBMTTQ_TINH", x)  # its submitter
    assert can("TT_HDND", x) == READS | {Resource.NOTIFICATIONS}  # no supervisor by default
    assert Resource.REPORTER not in can("SO_Y_TE", x)  # a past assignee
    assert Resource.REPORTER in can("TT_HDND", ordinary)  # supervisors, ordinary kinds
    assert Resource.REPORTER in can("SO_Y_TE", ordinary)
    assert Resource.REPORTER not in can("SO_GD_DT", ordinary)
    # A kind not known yet is treated as confidential.
    assert Resource.REPORTER not in can("TT_HDND", Case(kind=None, submitted_by="SO_NN_MT"))


def test_need_to_know_is_an_explicit_list(config_dir: Path) -> None:
    path = config_dir / "access.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["need_to_know"] = ["TT_HDND"]
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    ref = load_reference(config_dir)
    case = Case(kind="to_cao", submitted_by="UBMTTQ_TINH", assignee="THANH_TRA_TINH")
    assert Resource.REPORTER in readable(ref, agency="TT_HDND", case=case)
    assert Resource.REPORTER not in readable(ref, agency="UBND_TINH", case=case)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["grants"].update(source=["status"]), "never opens a case"),
        (lambda d: d["grants"]["supervisor"].append("reporter"), "`reporter` rule"),
        (lambda d: d["reporter"]["confidential"].append("supervisor"), "confidential reporter"),
        (lambda d: d["reporter"]["open"].append("source"), "source never sees"),
        (lambda d: d["grants"].pop("triage"), "every relation"),
        (lambda d: d.update(need_to_know=["NO_SUCH_BODY"]), "unknown agencies"),
    ],
)
def test_invariants_are_checked_at_start_up(
    config_dir: Path, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    path = config_dir / "access.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_reference(config_dir)


def test_missing_access_file_is_refused(config_dir: Path) -> None:
    (config_dir / "access.yaml").unlink()
    with pytest.raises(ConfigError, match=r"access\.yaml"):
        load_reference(config_dir)


def test_who_may_respond(config_dir: Path) -> None:
    ref = load_reference(config_dir)
    answer, close, classify = ResponseAction.ANSWER, ResponseAction.CLOSE, ResponseAction.CLASSIFY
    assert access.may_respond(ref, agency="SO_Y_TE", action=answer, assignee="SO_Y_TE")
    assert not access.may_respond(ref, agency="TT_HDND", action=answer, assignee="SO_Y_TE")
    assert not access.may_respond(ref, agency="SO_Y_TE", action=answer, assignee=None)
    assert access.may_respond(ref, agency="UBMTTQ_TINH", action=close, assignee=None)
    assert not access.may_respond(ref, agency="SO_Y_TE", action=close, assignee="SO_Y_TE")
    assert access.may_respond(ref, agency="TT_HDND", action=classify, assignee=None)
    assert not access.may_respond(ref, agency="UBMTTQ_TINH", action=classify, assignee=None)
    assert set(access.RESPONDERS) == set(ResponseAction)


def test_scope_matches_the_table(config_dir: Path) -> None:
    ref = load_reference(config_dir)
    everywhere = access.scope(ref, agency="TT_HDND", resource=Resource.STATUS)
    assert everywhere.everything
    mine = access.scope(ref, agency="SO_Y_TE", resource=Resource.STATUS)
    assert not mine.everything
    assert mine.via == {Relation.SUBMITTER, Relation.ASSIGNEE, Relation.PAST_ASSIGNEE}
