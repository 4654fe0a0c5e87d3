"""Storms: many new identities of one kind at once become one grouped issue with a task list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.ticket import domain
from services.ticket.domain import CreateIssue, Observation, Policy, UpdateIssue
from services.ticket.text import parse_members
from tests.unit.ticket.factories import T0, decision, enriched, revision

POLICY = Policy(default_repository="acme/alerts", storm_key_threshold=3, storm_partition_threshold=10, page_size=50)


class Partition:
    """One partition's state, as the runtime would hold it."""

    def get(self, k: str) -> Any:
        return self.state.get(k)

    def alert(self, ea: dict[str, Any], now=T0) -> domain.Plan:
        key = ea["alert"]["identity"]
        plan = domain.on_alert(self.state.get(key), ea, now, POLICY, self.get)
        if plan.state is not None:
            st = plan.state
            if plan.actions and isinstance(plan.actions[0], CreateIssue):
                st = domain.with_issue(st, 1000 + len(self.state), now)
            self.state[key] = st
        self.state.update(plan.other_states)
        return plan

    def __init__(self, policy: Policy = POLICY) -> None:
        self.state: dict[str, Any] = {}
        self.policy = policy

    def member(self, m: domain.MemberOut, now=T0) -> domain.Plan:
        ev = {"kind": "member", "key": m.key, "repository": m.repository, "group_key": m.group_key,
              "group_title": m.group_title, "member": m.member, "observed_at": now,
              "action": "join" if m.joined else "update"}  # fmt: skip
        plan = domain.on_member(self.get, ev, now, self.policy)  # type: ignore[arg-type]
        assert plan.state is not None
        self.state[plan.state["identity"]] = plan.state
        return plan


def test_beyond_the_key_threshold_new_identities_join_one_group() -> None:
    p = Partition()
    plans = [p.alert(enriched(i)) for i in range(8)]
    created = [pl for pl in plans if pl.actions]
    grouped = [pl for pl in plans if pl.members]
    assert len(created) == 3 and len(grouped) == 5
    keys = {pl.members[0].key for pl in grouped}
    assert len(keys) == 1, "one group for one rule"
    assert all(p.state[f"id-{i:08d}"]["state"] == "grouped" for i in range(3, 8))


def test_the_partition_threshold_groups_everything_new_in_a_flood_of_distinct_rules() -> None:
    p = Partition()
    plans = [p.alert(enriched(i, control_id=f"C{i}", title=f"rule {i}")) for i in range(25)]
    assert sum(1 for pl in plans if pl.actions) == 10
    assert sum(1 for pl in plans if pl.members) == 15


def test_counters_reset_after_the_window() -> None:
    p = Partition()
    for i in range(5):
        p.alert(enriched(i))
    later = T0 + POLICY.storm_window + timedelta(seconds=1)
    assert p.alert(enriched(99), now=later).actions, "a new window starts with individual issues"


def test_storm_disabled_never_groups() -> None:
    pol = Policy(default_repository="acme/alerts", storm_enabled=False)
    st: dict[str, Any] = {}
    for i in range(50):
        plan = domain.on_alert(None, enriched(i), T0, pol, st.get)
        assert plan.actions and not plan.members


def _group(n: int) -> tuple[Partition, Partition, list[dict[str, Any]]]:
    """n members of one group: the identities' partition and the group's partition."""
    ids, grp = Partition(), Partition()
    eas = [enriched(i, dec=decision(group_key="detector-rollout")) for i in range(n + 3)]
    for ea in eas:
        for m in ids.alert(ea).members:
            grp.member(m)
    return ids, grp, eas[3:]


def test_members_fill_pages_and_a_full_page_continues_on_the_next() -> None:
    _ids, grp, _ = _group(120)
    pages = sorted(k for k in grp.state if k.startswith("group:"))
    assert len(pages) == 3
    assert [len(grp.state[k]["members"]) for k in pages] == [50, 50, 20]
    assert all(grp.state[k]["dirty_since"] is not None for k in pages)


def test_a_member_index_finds_members_and_a_wrong_hint_falls_back_to_searching_every_page() -> None:
    ids, grp, eas = _group(120)
    (m,) = ids.alert(revision(eas[10], "r2", status="resolved")).members  # on page 1
    ev = {"kind": "member", "key": m.key, "repository": m.repository, "group_key": m.group_key,
          "group_title": m.group_title, "member": m.member, "observed_at": T0, "action": "update"}  # fmt: skip
    before = {k: len(v["members"]) for k, v in grp.state.items() if k.startswith("group:")}
    for hint in (1, 3, None):  # right, wrong (after an aborted batch), "not a member" - the last must be trusted
        plan = domain.on_member(grp.get, ev, T0, POLICY, lambda g, i, h=hint: h)  # type: ignore[arg-type,misc]
        assert plan.state is not None
        if hint is None:
            assert plan.state["page"] == 3 and len(plan.state["members"]) == 21
        else:
            assert plan.state["page"] == 1 and len(plan.state["members"]) == before[plan.state["identity"]]
            (row,) = [x for x in plan.state["members"] if x["identity"] == m.member["identity"]]
            assert row["resolved"]


def test_beyond_max_pages_a_group_counts_its_alerts_on_the_last_page_and_closes_when_all_resolve() -> None:
    pol = Policy(default_repository="acme/alerts", storm_key_threshold=3, page_size=50, max_pages=2)
    ids, grp = Partition(pol), Partition(pol)
    eas = [enriched(i, dec=decision(group_key="detector-rollout")) for i in range(153)]
    for ea in eas:
        for m in ids.alert(ea).members:
            grp.member(m)
    pages = sorted(k for k in grp.state if k.startswith("group:"))
    assert len(pages) == 2 and [len(grp.state[k]["members"]) for k in pages] == [50, 50]
    last = grp.state[pages[1]]
    assert (last["overflow"], last["overflow_resolved"]) == (50, 0)
    now = T0 + pol.flush_quiet
    create = _flush(grp, pages[1], now, number=501).actions[0]
    assert isinstance(create, CreateIssue) and create.title.startswith("[storm] 100 alerts: detector-rollout (part 2)")
    assert "and 50 more alerts of this kind (0 resolved)" in create.body
    assert "**100 open · 0 resolved**" in create.body
    _flush(grp, pages[0], now, number=500)
    for ea in eas[3:]:  # every alert resolves at the source: listed lines are ticked, the overflow counted down
        for m in ids.alert(revision(ea, "r2", status="resolved")).members:
            grp.member(m, now)
    last = grp.state[pages[1]]
    assert (last["overflow"], last["overflow_resolved"]) == (50, 50)
    upd = _flush(grp, pages[1], now + pol.flush_quiet).actions[0]
    assert isinstance(upd, UpdateIssue) and upd.state == "closed" and "(50 resolved)" in str(upd.body)
    (m,) = ids.alert(revision(eas[-1], "r3", minutes=5)).members  # one overflow alert comes back
    grp.member(m, now)
    assert grp.state[pages[1]]["overflow_resolved"] == 49
    again = _flush(grp, pages[1], now + 2 * pol.flush_quiet).actions[0]
    assert isinstance(again, UpdateIssue) and again.state == "open"


def _flush(grp: Partition, key: str, now: Any, number: int = 500) -> domain.Plan:
    plan = domain.flush_page(grp.state[key], now)
    st = plan.state
    assert st is not None
    if plan.actions and isinstance(plan.actions[0], CreateIssue):
        st = domain.with_issue(st, number, now)
    grp.state[key] = st
    return plan


def test_a_page_is_written_after_a_quiet_period_then_ticked_and_closed_as_members_resolve() -> None:
    ids, grp, eas = _group(4)
    (key,) = [k for k in grp.state if k.startswith("group:")]
    page = grp.state[key]
    assert not domain.flush_due(page, T0 + timedelta(seconds=30), POLICY)
    now = T0 + POLICY.flush_quiet
    assert domain.flush_due(page, now, POLICY)
    create = _flush(grp, key, now).actions[0]
    assert isinstance(create, CreateIssue) and create.title.startswith("[storm] 4 alerts: detector-rollout")
    assert set(parse_members(create.body)) == {ea["alert"]["identity"] for ea in eas}
    assert "alertline:storm" in create.labels
    for ea in eas[:3]:
        for m in ids.alert(revision(ea, "r2", status="resolved")).members:
            grp.member(m, now)
    upd = _flush(grp, key, now + POLICY.flush_quiet).actions[0]
    assert isinstance(upd, UpdateIssue) and upd.state is None
    assert sum(parse_members(upd.body).values()) == 3  # type: ignore[arg-type]
    for m in ids.alert(revision(eas[3], "r2", status="resolved")).members:
        grp.member(m, now)
    last = _flush(grp, key, now + 2 * POLICY.flush_quiet).actions[0]
    assert isinstance(last, UpdateIssue) and (last.state, last.state_reason) == ("closed", "completed")


def test_a_member_coming_back_reopens_its_page() -> None:
    ids, grp, eas = _group(1)
    (key,) = [k for k in grp.state if k.startswith("group:")]
    _flush(grp, key, T0)
    for m in ids.alert(revision(eas[0], "r2", status="resolved")).members:
        grp.member(m)
    assert _flush(grp, key, T0).actions[0].state == "closed"  # type: ignore[union-attr]
    for m in ids.alert(revision(eas[0], "r3", minutes=3)).members:
        grp.member(m)
    assert _flush(grp, key, T0).actions[0].state == "open"  # type: ignore[union-attr]


def test_a_human_tick_is_kept_and_a_human_close_stops_writes() -> None:
    _ids, grp, eas = _group(2)
    (key,) = [k for k in grp.state if k.startswith("group:")]
    body = _flush(grp, key, T0).actions[0].body  # type: ignore[union-attr]
    first = eas[0]["alert"]["identity"]
    ticked = body.replace("- [ ]", "- [x]", 1)
    seen = domain.observe_page(grp.state[key], Observation(500, "open", None, (), T0 + timedelta(minutes=1), ticked),
                               T0)  # fmt: skip
    assert seen is not None
    assert {m["identity"]: m["resolved"] for m in seen["members"]}[first] is True
    closed = domain.observe_page(seen, Observation(500, "closed", "not_planned", (), T0 + timedelta(minutes=2)), T0)
    assert closed is not None and closed["close_reason"] == "not_planned"
    closed["dirty_since"] = T0
    assert not domain.flush_due(closed, T0 + timedelta(days=1), POLICY)
