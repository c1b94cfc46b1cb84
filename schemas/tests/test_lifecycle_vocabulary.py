"""The shared lifecycle vocabulary: every action has a responder, the sets agree, roles exist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from phoihop_schemas import lifecycle
from phoihop_schemas.events import Response, ResponseAction, Status

NOW = datetime(2026, 11, 30, tzinfo=UTC)
AGENCIES = Path(__file__).resolve().parents[2] / "deploy" / "config" / "agencies.yaml"


def test_every_action_has_a_responder_and_roles_exist_in_the_config() -> None:
    assert set(lifecycle.RESPONDERS) == set(ResponseAction)
    roles = {r for a in yaml.safe_load(AGENCIES.read_text())["agencies"] for r in a["role"]}
    named = set(lifecycle.RESPONDERS.values()) - {lifecycle.ASSIGNEE, lifecycle.CORRECTOR}
    assert named | lifecycle.CORRECTION_ROLES <= roles


def test_status_sets_nest() -> None:
    assert lifecycle.ANSWERABLE < lifecycle.OPEN < lifecycle.UNSETTLED
    assert Status.MERGED not in lifecycle.UNSETTLED
    assert Status.ANSWERED in lifecycle.MERGEABLE_INTO
    assert Status.ANSWERED not in lifecycle.MERGEABLE_FROM
    assert lifecycle.values(lifecycle.ANSWERABLE) == {"assigned", "accepted", "reopened"}


def test_overdue_is_answerable_with_a_passed_deadline() -> None:
    past, future = NOW - timedelta(seconds=1), NOW + timedelta(days=1)
    assert lifecycle.is_overdue("assigned", past, NOW)
    assert lifecycle.is_overdue(Status.REOPENED, past, NOW)
    assert not lifecycle.is_overdue("assigned", future, NOW)
    assert not lifecycle.is_overdue("triage", past, NOW)  # nobody may answer yet
    assert not lifecycle.is_overdue("answered", past, NOW)
    assert not lifecycle.is_overdue("assigned", None, NOW)
    assert not lifecycle.is_overdue(None, past, NOW)


def test_missing_fields_per_action() -> None:
    def response(action: ResponseAction, **kw: object) -> Response:
        return Response(
            response_id="r",
            recommendation_id="c",
            agency="SO_Y_TE",
            action=action,
            responded_at=NOW,
            **kw,  # type: ignore[arg-type]
        )

    assert lifecycle.missing_fields(response(ResponseAction.ANSWER)) == ("text",)
    assert lifecycle.missing_fields(response(ResponseAction.ANSWER, text="Đã sửa")) == ()
    assert lifecycle.missing_fields(response(ResponseAction.CLASSIFY, category="Y_TE")) == (
        "level",
    )
    assert lifecycle.missing_fields(response(ResponseAction.MERGE_INTO)) == ("target",)
    assert lifecycle.missing_fields(response(ResponseAction.UNMERGE, reason="")) == ("reason",)
    assert lifecycle.missing_fields(response(ResponseAction.ACCEPT)) == ()
