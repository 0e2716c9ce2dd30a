"""Validation messages, workspace scoping, CRUD and the interface for campaigns."""

from __future__ import annotations

import pytest
from sqlalchemy import func, not_, select, text

from core.infra.errors import NotFound, PermissionDenied, ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, Contact
from core.segments import (
    InvalidRule,
    SegmentInUse,
    count_matching,
    create_segment,
    delete_segment,
    duplicate_segment,
    get_segment,
    list_segments,
    matching_query,
    sample_matching,
    segment_condition,
    update_segment,
    validate_rules,
)
from tests.segments.world import NOW, seed_world

PEOPLE = [
    {"city": "Paris", "custom_fields": {"score": 5}},
    {"city": "Lyon", "custom_fields": {"score": 1}},
    {"city": "paris", "custom_fields": {}},
]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"match": "all", "rules": [{"field": "shoe_size", "op": "eq", "value": "x"}]}, "Rule 1 "),
        ({"rules": [{"field": "city", "op": "gt", "value": "x"}]}, "does not fit a text field"),
        ({"rules": [{"field": "custom_fields.score", "op": "contains", "value": 1}]}, "number"),
        (
            {"rules": [{"field": "custom_fields.score", "op": "eq", "value": "ten"}]},
            "needs a number",
        ),
        (
            {
                "rules": [
                    {"rules": [{"field": "created_at", "op": "before", "value": "13/01/2026"}]}
                ]
            },
            "Rule 1.1",
        ),
        ({"rules": [{"field": "city", "op": "in", "value": []}]}, "non-empty list"),
        (
            {"rules": [{"field": "custom_fields.score", "op": "between", "value": [5, 1]}]},
            "low number first",
        ),
        ({"rules": [{"activity": "forwarded"}]}, "'activity'"),
        ({"rules": [{"activity": "opened", "within_days": 0}]}, "within_days"),
        ({"rules": [{"list": 999999}]}, "no list 999999"),
        ({"rules": [{"activity": "opened", "campaign_id": 999999}]}, "no campaign 999999"),
        ({"rules": [{"colour": "red"}]}, "is not a condition or a group"),
        ({"match": "some", "rules": []}, "'match'"),
        (
            {"rules": [{"rules": [{"rules": [{"rules": [{"rules": [{"rules": []}]}]}]}]}]},
            "at most 5 levels",
        ),
    ],
)
def test_invalid_rules_are_refused_with_a_message_naming_the_rule(session, rules, message):
    world, *_ = seed_world(session, PEOPLE)
    with pytest.raises(InvalidRule) as caught:
        validate_rules(session, world.workspace_id, rules)
    assert message in str(caught.value)


def test_five_levels_are_allowed(session):
    world, *_ = seed_world(session, PEOPLE)
    five = {
        "rules": [
            {
                "rules": [
                    {
                        "rules": [
                            {
                                "rules": [
                                    {"rules": [{"field": "city", "op": "eq", "value": "paris"}]}
                                ]
                            }
                        ]
                    }
                ]
            }
        ]
    }
    assert validate_rules(session, world.workspace_id, five)


def test_a_segment_never_matches_another_workspaces_contacts(session):
    mine, me, my_lists, my_campaigns = seed_world(session, PEOPLE, [(0, "open", 0, 1)], [(0, 0)])
    theirs, them, their_lists, their_campaigns = seed_world(
        session, PEOPLE, [(0, "open", 0, 1), (1, "open", 0, 1)], [(0, 0), (0, 1)]
    )
    everyone = {"match": "any", "rules": []}
    assert count_matching(session, me, everyone).count == 3
    opened = {"rules": [{"activity": "opened"}]}
    assert count_matching(session, me, opened).count == 1
    assert count_matching(session, them, opened).count == 2
    not_opened = {"rules": [{"activity": "opened", "negate": True}]}
    assert count_matching(session, me, not_opened).count == 2
    # The other workspace's list and campaign ids are refused, not silently empty.
    with pytest.raises(InvalidRule):
        count_matching(session, me, {"rules": [{"list": their_lists[0]}]})
    with pytest.raises(InvalidRule):
        count_matching(
            session, me, {"rules": [{"activity": "opened", "campaign_id": their_campaigns[0]}]}
        )
    # The interface campaigns use: scoped, and safe to negate (two-valued).
    segment = create_segment(
        session,
        me,
        "Paris fans",
        {
            "rules": [
                {"field": "city", "op": "eq", "value": "PARIS"},
                {"field": "custom_fields.score", "op": "gt", "value": 2},
            ],
            "match": "any",
        },
    )
    condition = segment_condition(session, me.workspace_id, segment.id)
    matched = set(
        session.scalars(
            select(Contact.id).where(Contact.workspace_id == me.workspace_id, condition)
        )
    )
    assert matched == mine.matching(segment.rules) and len(matched) == 2
    others = session.scalar(
        select(func.count())
        .select_from(Contact)
        .where(Contact.workspace_id == me.workspace_id, not_(condition))
    )
    assert others == 1
    with pytest.raises(NotFound):
        segment_condition(session, them.workspace_id, segment.id)
    with pytest.raises(NotFound):
        get_segment(session, them, segment.id)
    assert list_segments(session, them) == []


def test_crud_duplicate_and_delete_guard(session):
    world, actor, lists, campaigns = seed_world(session, PEOPLE, members=[(0, 0), (0, 2)])
    rules = {
        "match": "all",
        "rules": [{"list": lists[0]}, {"field": "city", "op": "eq", "value": " paris "}],
    }
    segment = create_segment(session, actor, "  Paris list ", rules)
    assert segment.name == "Paris list"
    assert segment.rules["rules"][1]["value"] == "paris"  # normalized on save
    with pytest.raises(ValidationFailed, match="already exists"):
        create_segment(session, actor, "Paris list", rules)
    copy = duplicate_segment(session, actor, segment.id)
    assert copy.name == "Paris list (copy)" and copy.rules == segment.rules
    assert duplicate_segment(session, actor, segment.id).name == "Paris list (copy 2)"
    update_segment(
        session,
        actor,
        copy.id,
        name="Lyon",
        rules={"rules": [{"field": "city", "op": "eq", "value": "lyon"}]},
    )
    assert count_matching(session, actor, get_segment(session, actor, copy.id).rules).count == 1
    assert [s.name for s in list_segments(session, actor)] == [
        "Lyon",
        "Paris list",
        "Paris list (copy 2)",
    ]
    assert {c.city for c in sample_matching(session, actor, segment.rules)} == {"Paris", "paris"}

    campaign = Campaign(
        workspace_id=actor.workspace_id,
        name="June news",
        status="scheduled",
        audience={"segment_id": segment.id},
    )
    session.add(campaign)
    session.flush()
    with pytest.raises(SegmentInUse, match="June news"):
        delete_segment(session, actor, segment.id)
    campaign.status = "sent"
    session.flush()
    delete_segment(session, actor, segment.id)
    assert "Paris list" not in [s.name for s in list_segments(session, actor)]

    viewer = Actor(workspace_id=actor.workspace_id, role="viewer")
    assert count_matching(session, viewer, rules).count == 2
    with pytest.raises(PermissionDenied):
        create_segment(session, viewer, "Nope", rules)


def test_any_group_hashes_small_activity_sets_and_probes_big_ones(session, backend):
    """Under "any", an activity rule becomes `IN`; on PostgreSQL only when the planner expects
    its ids to fit in hash memory, else EXISTS (a per-row probe, never a rescan)."""
    people = [{"city": "Oslo"} for _ in range(60)]
    opens = [(i, "open", 0, 1) for i in range(40)]
    world, me, _, _ = seed_world(session, people, opens)
    session.execute(text("ANALYZE event"))
    rules = {
        "match": "any",
        "rules": [
            {"field": "city", "op": "eq", "value": "Bergen"},
            {"activity": "opened", "within_days": 30},
        ],
    }

    def compiled_sql() -> str:
        query = matching_query(session, me.workspace_id, rules, at=NOW)
        return str(query.compile(dialect=session.get_bind().dialect))

    assert count_matching(session, me, rules, at=NOW).count == 40 == len(world.matching(rules))
    assert " IN (SELECT event.contact_id" in compiled_sql()
    # "received" is two event types: an expanding parameter the planner's estimate renders.
    received = {"match": "any", "rules": [*rules["rules"], {"activity": "received"}]}
    assert count_matching(session, me, received, at=NOW).count == 40
    if backend != "postgresql":
        return  # SQLite builds an ephemeral index of the ids whatever their number
    # A hash budget of 64 kB at most holds about a thousand ids: the big set keeps EXISTS.
    session.execute(text("SET LOCAL work_mem = '64kB'"))
    session.execute(text("SET LOCAL hash_mem_multiplier = 1"))
    many = [(i % 60, "open", 0, 1 + i % 20) for i in range(3000)]
    seed_world(session, people, many)
    session.execute(text("ANALYZE event"))
    assert " IN (SELECT" not in compiled_sql()
    assert "EXISTS (SELECT" in compiled_sql()
