"""The lifecycle of one recommendation as a pure state machine.

`apply(state, command, policy=..., now=...)` returns an `Outcome`: the new state, the
canonical events to emit (numbered `sequence` = previous + 1, + 2, ... so a case's events
never have gaps) and the internal effects the agents carry out (link a merged duplicate to
its open case, leave or join a duplicate bucket). An input that does not fit the state
raises `RejectedError(reason)`; the agent dead-letters it with that reason.

```
received ─► merged                                    (duplicate of an open case)
   └──────► assigned ─► accepted ─► answered ─► closed        (close: supervisor)
            │   ▲  └────────┴──► declined ─► assigned (category's provincial body)
            │   │                          └► triage   (after max_hops, or no body left)
            triage ─ classify (triage role) ─┘  answered ─► reopened (supervisor) ─► answered
   merged ─► unmerged ─► assigned  (unmerge: the case it was merged into lets it go)
   merge_into / not_duplicate: open ─► merged, or `duplicate_dismissed` (status kept)
   timers: reminded before the deadline, escalated level 1, 2 … after it (each once per
           deadline); extended (to_cao: at most `extensions` times; khieu_nai: once to
           `complex_days`) moves the deadline. An assigned case neither accepted nor
           declined by its accept deadline is escalated on the same ladder, `stage="accept"`.
```

Suggestions: a `Route` that is not a merge but carries open cases below the auto-merge bar
(`suggestions`, best first) emits `duplicate_suggested` right after `assigned` (next
sequence) for the assignee and the triage body; the status does not change.

Commands: `Route` (the verdict of the duplicate stage for a `received` event), `Respond`
(an agency's `Response`), `Tick` (a timer found a deadline due; re-checked here, so a
repeated or stale tick does nothing), `Link` (a duplicate was merged into this case) and
`AnswerOf` (the case this one was merged into had already been answered).
Replays are harmless: a second `Route` for a known case is ignored, a `Response` whose id
the case already applied is skipped, `Tick` only acts on what is still due, a `Link` of a
known duplicate and an `AnswerOf` already delivered do nothing.

Merged duplicates get the answer. A duplicate linked to an open case is one of the
recipients of that case's `Answered` (`recipients` = the case's submitter and every merged
source). A duplicate linked to a case that is *already* answered (or answered and then
closed) cannot be a recipient of an event that was emitted before it existed, so the case
sends the answer back with an `AnswerOf` command keyed by the duplicate (`ShareAnswer`
effect), and the duplicate's own partition emits an `Answered` event on the duplicate
itself: the answering agency, the case's answer text and timeliness, `recipients` = the
duplicate's submitting agency, and the duplicate's next sequence (it becomes `answered`).
Re-emitting on the answered case instead would write a second answer into that case's trail
(and its on-time figures); this way every recommendation is still written by its own
partition only and each keeps a gap-free sequence. A case closed without an answer has
nothing to share: its duplicates stay `merged`.

Complaints (`khieu_nai`): the law allows 45 days instead of 30 for complex cases. The
policy file says so with `answer: {days: 30, complex_days: 45}`; the assignee's
`request_extension` response switches the answer deadline, once per case, to
`complex_days` (same unit as the answer limit) counted from the start of the current answer
period (the assignment, or the reopening), emitting `Extended` (extension 1).

Corrections (`merge_into`, `not_duplicate`, `unmerge`) are a short exchange of internal
commands between the two cases, each applied on its own partition (`Forward` effects; the
commands are in module `phoihop_routing.corrections`).

One module per concern, every name importable from `phoihop_routing.lifecycle`:

- `model`: the state (`CaseState`), commands, effects, `Policy`, `Outcome` and `_Steps`;
- `routing`: `Route` (merge or assign), `Link`, `AnswerOf` and `_assign`;
- `responses`: the agencies' responses (accept … reopen) and their dispatch;
- `merging`: the duplicate corrections, from the response on one case to the last step;
- `timers`: `tick` (reminders, escalations) and `next_due`.
"""

from __future__ import annotations

from datetime import datetime

from phoihop_routing.corrections import Source as MergedSource
from phoihop_routing.lifecycle.merging import _correct
from phoihop_routing.lifecycle.model import (
    ANSWERABLE,
    LIFECYCLE_VERSION,
    OPEN_STATUSES,
    PROCESSED_KEPT,
    AnswerOf,
    CaseState,
    Command,
    Effect,
    Forward,
    JoinBucket,
    LeaveBucket,
    Link,
    LinkCase,
    Outcome,
    Policy,
    Respond,
    Route,
    ShareAnswer,
    Tick,
)
from phoihop_routing.lifecycle.responses import _respond
from phoihop_routing.lifecycle.routing import _answer_of, _link, _route
from phoihop_routing.lifecycle.timers import next_due, tick

__all__ = [
    "ANSWERABLE",
    "LIFECYCLE_VERSION",
    "OPEN_STATUSES",
    "PROCESSED_KEPT",
    "AnswerOf",
    "CaseState",
    "Command",
    "Effect",
    "Forward",
    "JoinBucket",
    "LeaveBucket",
    "Link",
    "LinkCase",
    "MergedSource",
    "Outcome",
    "Policy",
    "Respond",
    "Route",
    "ShareAnswer",
    "Tick",
    "apply",
    "next_due",
    "tick",
]


def apply(state: CaseState | None, command: Command, *, policy: Policy, now: datetime) -> Outcome:
    """Apply one command to a case; raise RejectedError when it does not fit the state."""
    if isinstance(command, Route):
        return _route(state, command, policy=policy, now=now)
    if isinstance(command, Link):
        return _link(state, command)
    if isinstance(command, AnswerOf):
        return _answer_of(state, command, now=now)
    if isinstance(command, Tick):
        return tick(state, policy=policy, now=now)
    if isinstance(command, Respond):
        return _respond(state, command.response, policy=policy, now=now)
    return _correct(state, command, policy=policy, now=now)
