"""The lifecycle, pure: what each alert, human change and tick means for the issue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.ticket import domain, render
from services.ticket.domain import AddComment, CreateIssue, Observation, Plan, Policy, UpdateIssue
from tests.unit.ticket.factories import T0, decision, enriched, enrichment, revision

POLICY = Policy(default_repository="acme/alerts", storm_enabled=False)


def _created(ea: dict[str, Any], now=T0, number: int = 7) -> Any:
    plan = domain.on_alert(None, ea, now, POLICY)
    assert [type(a) for a in plan.actions] == [CreateIssue]
    return domain.with_issue(plan.state, number, now)  # type: ignore[arg-type]


def _kinds(plan: Plan) -> list[str]:
    return [type(a).__name__ for a in plan.actions]


def _update(plan: Plan) -> UpdateIssue:
    (u,) = [a for a in plan.actions if isinstance(a, UpdateIssue)]
    return u


def _comment(plan: Plan) -> AddComment:
    (c,) = [a for a in plan.actions if isinstance(a, AddComment)]
    return c


def test_new_alert_creates_one_issue_with_title_labels_marker_and_assignees() -> None:
    ea = enriched(1, dec=decision(assignees=["octo"], repository="acme/other"))
    plan = domain.on_alert(None, ea, T0, POLICY)
    (create,) = plan.actions
    assert isinstance(create, CreateIssue)
    assert create.repository == "acme/other"
    assert create.title.startswith("[high] EC2.19")
    assert "severity:high" in create.labels and "team:payments" in create.labels
    assert create.assignees == ("octo",)
    assert create.marker.identity == "id-00000001" and create.marker.generation == 0
    assert plan.state["state"] == "open" and plan.state["issue_number"] is None  # type: ignore[index]


def test_redelivery_of_the_same_revision_does_nothing() -> None:
    ea = enriched(1)
    st = _created(ea)
    plan = domain.on_alert(st, ea, T0 + timedelta(minutes=5), POLICY)
    assert plan.actions == [] and plan.state is None


def test_older_revision_arriving_late_does_nothing() -> None:
    ea = enriched(1)
    st = _created(revision(ea, "r9", minutes=30))
    assert domain.on_alert(st, revision(ea, "r2", minutes=5), T0, POLICY).actions == []


def test_recurrence_while_open_updates_the_body_and_comments_once_per_window() -> None:
    ea = enriched(1)
    st = _created(ea)
    p1 = domain.on_alert(st, revision(ea, "r2"), T0 + timedelta(hours=1), POLICY)
    assert _kinds(p1) == ["UpdateIssue"], "the new issue itself was the notice: no comment inside the window"
    upd = _update(p1)
    assert upd.state is None and "seen **2** times" in str(upd.status)
    assert p1.state["occurrences"] == 2  # type: ignore[index]
    p2 = domain.on_alert(p1.state, revision(ea, "r3", minutes=2), T0 + timedelta(hours=2), POLICY)
    assert _kinds(p2) == ["UpdateIssue"]
    p3 = domain.on_alert(p2.state, revision(ea, "r4", minutes=3), T0 + timedelta(hours=26), POLICY)
    assert _kinds(p3) == ["AddComment", "UpdateIssue"], "a day later: seen again"
    p4 = domain.on_alert(p3.state, revision(ea, "r5", minutes=4), T0 + timedelta(hours=27), POLICY)
    assert _kinds(p4) == ["UpdateIssue"], "a second comment inside the window is noise"


def test_recurrences_inside_the_refresh_window_are_counted_and_written_once_by_the_tick() -> None:
    ea = enriched(1)
    st = _created(ea)
    now = T0
    state = st
    for n in range(2, 8):  # six inside body_refresh (10 min) of the creation: no write each
        now += timedelta(seconds=30)
        p = domain.on_alert(state, revision(ea, f"r{n}", minutes=n), now, POLICY)
        assert p.actions == [] and p.state is not None and p.state["occurrences"] == n
        assert p.state["dirty_since"] is not None and p.note == "seen again: body refresh deferred"
        state = p.state
    assert state is not None
    assert not domain.refresh_due(state, now, POLICY)
    later = T0 + timedelta(minutes=11)
    assert domain.refresh_due(state, later, POLICY)
    plan = domain.refresh_body(state, later)
    assert "seen **7** times" in str(_update(plan).status) and "occ=7" in str(_update(plan).marker)
    assert plan.state is not None and not domain.refresh_due(plan.state, later + timedelta(hours=1), POLICY)


def test_a_status_change_is_written_at_once_even_inside_the_refresh_window() -> None:
    ea = enriched(1)
    st = _created(ea)
    p1 = domain.on_alert(st, revision(ea, "r2"), T0 + timedelta(seconds=10), POLICY)
    p2 = domain.on_alert(p1.state, revision(ea, "r3", minutes=1), T0 + timedelta(seconds=20), POLICY)
    assert p2.actions == [] and p2.state is not None
    p3 = domain.on_alert(p2.state, revision(ea, "r4", status="resolved", minutes=2), T0 + timedelta(seconds=30),
                         POLICY)  # fmt: skip
    assert _kinds(p3) == ["AddComment", "UpdateIssue"] and _update(p3).state == "closed"
    assert p3.state is not None and p3.state["dirty_since"] is None
    assert "occ=4" in str(_update(p3).marker)


def test_body_refresh_zero_writes_every_recurrence() -> None:
    policy = Policy(default_repository="acme/alerts", storm_enabled=False, body_refresh=timedelta(0))
    ea = enriched(1)
    st = _created(ea)
    p1 = domain.on_alert(st, revision(ea, "r2"), T0 + timedelta(seconds=10), policy)
    p2 = domain.on_alert(p1.state, revision(ea, "r3", minutes=1), T0 + timedelta(seconds=20), policy)
    assert _kinds(p2) == ["UpdateIssue"]


def test_resolved_at_source_comments_and_closes_as_completed() -> None:
    ea = enriched(1)
    st = _created(ea)
    plan = domain.on_alert(st, revision(ea, "r2", status="resolved"), T0, POLICY)
    assert _kinds(plan) == ["AddComment", "UpdateIssue"]
    upd = _update(plan)
    assert (upd.state, upd.state_reason) == ("closed", "completed")
    assert plan.state["state"] == "closed" and plan.state["close_reason"] == "resolved"  # type: ignore[index]


def test_suppressed_at_source_closes_as_not_planned() -> None:
    ea = enriched(1)
    plan = domain.on_alert(_created(ea), revision(ea, "r2", status="suppressed"), T0, POLICY)
    assert _update(plan).state_reason == "not_planned"


def test_rule_without_auto_close_labels_instead_of_closing() -> None:
    ea = enriched(1, dec=decision(auto_close=False))
    st = _created(ea)
    plan = domain.on_alert(st, revision(ea, "r2", status="resolved"), T0, POLICY)
    (upd,) = plan.actions
    assert isinstance(upd, UpdateIssue) and upd.state is None and upd.add_labels == (render.LABEL_RESOLVED,)
    back = domain.on_alert(plan.state, revision(ea, "r3", minutes=2), T0, POLICY)
    assert _update(back).remove_labels == (render.LABEL_RESOLVED,)


def _closed(ea: dict[str, Any]) -> Any:
    plan = domain.on_alert(_created(ea), revision(ea, "r2", status="resolved"), T0, POLICY)
    return plan.state


def test_recurrence_after_close_reopens_with_a_comment() -> None:
    ea = enriched(1)
    plan = domain.on_alert(_closed(ea), revision(ea, "r3", minutes=5), T0 + timedelta(days=2), POLICY)
    assert _kinds(plan) == ["AddComment", "UpdateIssue"]
    assert _update(plan).state == "open"
    assert "Reopened" in _comment(plan).body


def test_recurrence_after_the_reopen_window_opens_a_new_issue_linking_the_old() -> None:
    ea = enriched(1)
    plan = domain.on_alert(_closed(ea), revision(ea, "r3", minutes=5), T0 + timedelta(days=31), POLICY)
    (create,) = plan.actions
    assert isinstance(create, CreateIssue) and create.marker.generation == 1
    assert "#7" in create.body and plan.state["previous_issue"] == 7  # type: ignore[index]


def test_closed_as_not_planned_by_a_human_stays_closed_on_recurrence() -> None:
    ea = enriched(1)
    st = _created(ea)
    human = domain.observe(st, Observation(7, "closed", "not_planned", tuple(st["labels"]), T0 + timedelta(hours=1)))
    assert human is not None and human["close_reason"] == "not_planned"
    plan = domain.on_alert(human, revision(ea, "r2"), T0 + timedelta(hours=2), POLICY)
    assert plan.actions == [] and plan.state["occurrences"] == 2  # type: ignore[index]
    new_issue = Policy(default_repository="acme/alerts", storm_enabled=False, not_planned="new_issue")
    plan2 = domain.on_alert(human, revision(ea, "r2"), T0 + timedelta(hours=2), new_issue)
    assert _kinds(plan2) == ["CreateIssue"]


def test_a_human_reopening_what_we_closed_turns_auto_close_off_for_that_issue() -> None:
    ea = enriched(1)
    closed = _closed(ea)
    closed["gh_updated_at"] = T0
    reopened = domain.observe(
        closed, Observation(7, "open", "reopened", tuple(closed["labels"]), T0 + timedelta(hours=1))
    )
    assert reopened is not None and reopened["state"] == "open" and reopened["auto_close"] is False
    plan = domain.on_alert(reopened, revision(ea, "r5", status="resolved", minutes=9), T0, POLICY)
    assert _kinds(plan) == ["UpdateIssue"] and plan.actions[0].add_labels == (render.LABEL_RESOLVED,)  # type: ignore[union-attr]


def test_observations_older_than_our_last_write_are_ignored() -> None:
    st = _created(enriched(1), now=T0)
    st["gh_updated_at"] = T0 + timedelta(minutes=10)
    stale = Observation(7, "closed", "completed", (), T0 + timedelta(minutes=5))
    assert domain.observe(st, stale) is None


def test_a_label_a_human_removed_is_never_added_again() -> None:
    ea = enriched(1, dec=decision(auto_close=False))
    st = _created(ea)
    labels = tuple(x for x in st["labels"] if x != "team:payments")
    seen = domain.observe(st, Observation(7, "open", None, labels, T0 + timedelta(minutes=1)))
    assert seen is not None and "team:payments" in seen["removed_labels"]
    assert "team:payments" not in seen["labels"]


def test_new_enrichment_results_comment_once_and_changes_say_so() -> None:
    ea = enriched(1, enrichments=[enrichment("1.2.3.4", "a")])
    st = _created(ea)
    same = domain.on_alert(st, enriched(1, kind="recheck", enrichments=[enrichment("1.2.3.4", "a")]), T0, POLICY)
    assert same.actions == [], "results shown in the body are not commented again"
    changed = domain.on_alert(st, enriched(1, kind="recheck", enrichments=[enrichment("1.2.3.4", "b", "malicious")]),
                              T0, POLICY)  # fmt: skip
    (c,) = changed.actions
    assert isinstance(c, AddComment) and "(changed)" in c.body and "malicious" in c.body
    again = domain.on_alert(changed.state, enriched(1, kind="recheck", enrichments=[enrichment("1.2.3.4", "b")]), T0,
                            POLICY)  # fmt: skip
    assert again.actions == []
    back = domain.on_alert(changed.state, enriched(1, kind="recheck", enrichments=[enrichment("1.2.3.4", "a")]), T0,
                           POLICY)  # fmt: skip
    assert _kinds(back) == ["AddComment"], "a result that changes back is a change too"


def test_comment_keys_are_stable_so_a_retry_finds_its_own_comment() -> None:
    ea = enriched(1)
    st = _created(ea)
    a = _comment(domain.on_alert(st, revision(ea, "r2"), T0 + timedelta(days=2), POLICY))
    b = _comment(domain.on_alert(st, revision(ea, "r2"), T0 + timedelta(days=2, minutes=3), POLICY))
    assert a.key == b.key


def test_first_seen_already_resolved_opens_nothing_but_a_later_activation_does() -> None:
    ea = enriched(1, status="resolved")
    plan = domain.on_alert(None, ea, T0, POLICY)
    assert plan.actions == [] and plan.state["state"] == "resolved"  # type: ignore[index]
    again = domain.on_alert(plan.state, revision(ea, "r2"), T0, POLICY)
    assert _kinds(again) == ["CreateIssue"]


def test_dropped_decisions_are_ignored() -> None:
    assert domain.on_alert(None, enriched(1, dec=decision(action="drop")), T0, POLICY).actions == []


def test_inactivity_closes_sources_that_never_resolve() -> None:
    ea = enriched(1, product="guardduty")
    st = _created(ea)
    assert domain.inactive_due(st, T0 + timedelta(days=13), POLICY) is None
    timeout = domain.inactive_due(st, T0 + timedelta(days=15), POLICY)
    assert timeout == timedelta(days=14)
    plan = domain.close_inactive(st, timeout, T0 + timedelta(days=15))
    assert _kinds(plan) == ["AddComment", "UpdateIssue"] and "14 days" in plan.actions[0].body  # type: ignore[union-attr]
    assert plan.state["close_reason"] == "inactive"  # type: ignore[index]
    assert domain.inactive_due(_created(enriched(2)), T0 + timedelta(days=99), POLICY) is None, "securityhub resolves"
