"""Random contacts, events and rule trees: the compiled query agrees with the reference."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.segments.world import NOW, seed_world, sql_matching

WORDS = ["", "new york", "New York", "Boston", "bos", "york", "Paris", "paris%", "a_b"]
TEXT_VALUES = ["new york", "BOSTON", "york", "bos", "paris%", "a_b", "x"]
EVENT_TYPES = ["sent", "delivered", "open", "click", "bounce", "unsubscribe"]

custom_value = st.one_of(
    st.none(),
    st.sampled_from(WORDS),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 2)),
    st.booleans(),
    st.sampled_from(["2026-06-01", "2026-06-14", "2025-12-31", "2026-06-15T08:00:00", "bad"]),
)
contacts = st.lists(
    st.fixed_dictionaries(
        {
            "city": st.sampled_from(WORDS),
            "company": st.sampled_from(WORDS),
            "status": st.sampled_from(["subscribed", "unsubscribed", "bounced"]),
            "created_at": st.integers(0, 60 * 24).map(lambda h: NOW - timedelta(hours=h)),
            "custom_fields": st.dictionaries(
                st.sampled_from(["plan", "score", "vip", "renewal"]), custom_value, max_size=4
            ),
        }
    ),
    min_size=1,
    max_size=12,
)


def events_for(n: int):
    return st.lists(
        st.tuples(
            st.integers(0, n - 1),
            st.sampled_from(EVENT_TYPES),
            st.integers(0, 1),
            st.integers(0, 40),
        ),
        max_size=25,
    )


date_value = st.sampled_from(["2026-05-20", "2026-06-01", "2026-06-14", "2026-06-15"])
field_rules = st.one_of(
    st.builds(
        lambda f, op, v: {"field": f, "op": op, "value": v},
        st.sampled_from(["city", "company", "status", "custom_fields.plan"]),
        st.sampled_from(["eq", "neq", "contains", "not_contains", "starts_with", "ends_with"]),
        st.sampled_from(TEXT_VALUES),
    ),
    st.builds(
        lambda f, op, v: {"field": f, "op": op, "value": v},
        st.sampled_from(["city", "custom_fields.plan"]),
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(TEXT_VALUES), min_size=1, max_size=3),
    ),
    st.builds(
        lambda f, op: {"field": f, "op": op},
        st.sampled_from(
            ["city", "custom_fields.plan", "custom_fields.score", "custom_fields.renewal"]
        ),
        st.sampled_from(["is_empty", "is_not_empty"]),
    ),
    st.builds(
        lambda op, v: {"field": "custom_fields.score", "op": op, "value": v},
        st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]),
        st.integers(-5, 5),
    ),
    st.builds(
        lambda a, b: {"field": "custom_fields.score", "op": "between", "value": sorted([a, b])},
        st.integers(-5, 5),
        st.integers(-5, 5),
    ),
    st.builds(
        lambda f, op, v: {"field": f, "op": op, "value": v},
        st.sampled_from(["created_at", "custom_fields.renewal"]),
        st.sampled_from(["before", "after"]),
        date_value,
    ),
    st.builds(
        lambda f, op, v: {"field": f, "op": op, "value": v},
        st.sampled_from(["created_at", "custom_fields.renewal"]),
        st.sampled_from(["within_last_days", "not_within_last_days"]),
        st.integers(1, 40),
    ),
    st.builds(
        lambda f, a, b: {"field": f, "op": "between", "value": sorted([a, b])},
        st.sampled_from(["created_at", "custom_fields.renewal"]),
        date_value,
        date_value,
    ),
    st.builds(
        lambda op: {"field": "custom_fields.vip", "op": op},
        st.sampled_from(["is_true", "is_false", "is_empty"]),
    ),
)
activity_rules = st.builds(
    lambda a, c, d, n: {"activity": a, "campaign_id": c, "within_days": d, "negate": n},
    st.sampled_from(["received", "opened", "clicked", "bounced", "unsubscribed"]),
    st.sampled_from([None, 0, 1]),  # campaign index, resolved below
    st.sampled_from([None, 3, 30]),
    st.booleans(),
)
list_rules = st.builds(lambda i, n: {"list": i, "negate": n}, st.integers(0, 1), st.booleans())
leaves = st.one_of(field_rules, field_rules, activity_rules, list_rules)
trees = st.recursive(
    leaves,
    lambda children: st.builds(
        lambda m, r: {"match": m, "rules": r},
        st.sampled_from(["all", "any"]),
        st.lists(children, max_size=4),
    ),
    max_leaves=8,
)


def _depth(rule) -> int:
    return 1 + max((_depth(r) for r in rule.get("rules", [])), default=0) if "rules" in rule else 0


def _resolve(rule, lists, campaigns):
    """Replace list and campaign indexes by the ids created for this example."""
    if "rules" in rule:
        return {**rule, "rules": [_resolve(r, lists, campaigns) for r in rule["rules"]]}
    if "list" in rule:
        return {**rule, "list": lists[rule["list"]]}
    if "activity" in rule and rule["campaign_id"] is not None:
        return {**rule, "campaign_id": campaigns[rule["campaign_id"]]}
    return rule


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_rule_trees_match_the_reference(session, data):
    people = data.draw(contacts)
    events = data.draw(events_for(len(people)))
    members = data.draw(st.lists(st.tuples(st.integers(0, 1), st.integers(0, len(people) - 1))))
    nested = session.begin_nested()
    try:
        world, _actor, lists, campaigns = seed_world(session, people, events, members)
        for _ in range(8):
            tree = data.draw(trees)
            if "rules" not in tree:
                tree = {"match": "all", "rules": [tree]}
            if _depth(tree) > 5:
                continue
            tree = _resolve(tree, lists, campaigns)
            assert sql_matching(session, world.workspace_id, tree) == world.matching(tree), tree
    finally:
        nested.rollback()
