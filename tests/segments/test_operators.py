"""Every operator of every field type, compiled to SQL, against the reference evaluator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.segments import OPERATORS
from tests.segments.world import NOW, seed_world, sql_matching

# Edge values: missing, JSON null, "", the wrong JSON type, mixed case, LIKE wildcards.
CONTACTS = [
    {
        "city": "New York",
        "custom_fields": {"plan": "Pro", "score": 1, "vip": True, "renewal": "2026-06-10"},
    },
    {
        "city": "new york",
        "custom_fields": {
            "plan": "pro",
            "score": 2.5,
            "vip": False,
            "renewal": "2026-01-01T10:00:00",
        },
    },
    {"city": "", "custom_fields": {"plan": "", "score": -3, "vip": None, "renewal": "junk-value"}},
    {"city": "Boston", "custom_fields": {"plan": None, "score": "7", "vip": "true", "renewal": ""}},
    {"city": "Newark", "custom_fields": {}},
    {"city": "York%_x", "custom_fields": {"plan": 5, "score": True, "vip": 1, "renewal": 20260101}},
    {
        "city": "Los Angeles",
        "custom_fields": {"plan": "basic plan", "score": 10, "renewal": "2027-02-01"},
        "created_at": NOW - timedelta(days=400),
    },
    {
        "city": "boston",
        "custom_fields": {"plan": "Enterprise", "score": 2, "vip": True, "renewal": "2026-06-15"},
        "created_at": NOW - timedelta(hours=5),
    },
    # Unicode case folding, the same on both databases (SQLite's lower() folds ASCII only).
    {"city": "São Paulo", "custom_fields": {"plan": "Straße"}},
    {"city": "SÃO PAULO", "custom_fields": {"plan": "STRASSE"}},
    {"city": "ΣΊΣΥΦΟΣ", "custom_fields": {"plan": "ﬁx"}},
]

VALUES = {
    "text": {
        "eq": ["new york", "BOSTON", "são paulo", "strasse", "σίσυφος"],
        "neq": ["New York", "Straße"],
        "contains": ["york", "%", "_", "ÃO", "ss", "FI"],
        "not_contains": ["york", "ß"],
        "starts_with": ["new", "york%", "sã"],
        "ends_with": ["york", "ON", "ΦΟΣ"],
        "in": [["boston", "NEWARK"], ["pro", "basic plan"], ["paris", "berlin", "SÃO PAULO"]],
        "not_in": [["boston", "new york"], ["straße"]],
    },
    "number": {
        "eq": [2.5, 1],
        "neq": [2],
        "gt": [1],
        "gte": [2],
        "lt": [2],
        "lte": [-3],
        "between": [[1, 2.5], [-10, 0]],
    },
    "date": {
        "before": ["2026-06-05", "2026-02-01"],
        "after": ["2026-06-05", "2026-06-14"],
        "between": [["2026-06-05", "2026-06-15"], ["2026-01-01", "2026-01-01"]],
        "within_last_days": [1, 7],
        "not_within_last_days": [7, 30],
    },
}
FIELDS = {
    "text": ["city", "custom_fields.plan"],
    "number": ["custom_fields.score"],
    "date": ["created_at", "custom_fields.renewal"],
    "boolean": ["custom_fields.vip"],
}


def _cases():
    for type_, fields in FIELDS.items():
        for name in fields:
            for op in OPERATORS[type_]:
                for value in VALUES.get(type_, {}).get(op, [None]):
                    yield {"field": name, "op": op, "value": value}


def test_each_operator_matches_the_reference(session):
    world, _actor, _lists, _campaigns = seed_world(session, CONTACTS)
    checked = 0
    for rule in _cases():
        tree = {"match": "all", "rules": [rule]}
        assert sql_matching(session, world.workspace_id, tree) == world.matching(tree), rule
        checked += 1
    assert checked > 60


def test_marketer_semantics(session):
    """The promises of the spec, spelled out on the same data."""
    world, *_ = seed_world(session, CONTACTS)
    ws = world.workspace_id
    by_city = {c["city"]: c["id"] for c in world.contacts}

    def match(rule):
        return sql_matching(session, ws, {"match": "all", "rules": [rule]})

    not_ny = match({"field": "city", "op": "neq", "value": "new york"})
    assert by_city[""] in not_ny and by_city["New York"] not in not_ny
    assert match({"field": "city", "op": "eq", "value": "NEW YORK"}) == {
        by_city["New York"],
        by_city["new york"],
    }
    # Unicode folds as Python's casefold on both databases: the seed's "São Paulo" miss.
    sao = {by_city["São Paulo"], by_city["SÃO PAULO"]}
    assert match({"field": "city", "op": "in", "value": ["paris", "SÃO PAULO"]}) == sao
    assert match({"field": "custom_fields.plan", "op": "eq", "value": "strasse"}) == sao
    assert match({"field": "city", "op": "eq", "value": "σίσυφος"}) == {by_city["ΣΊΣΥΦΟΣ"]}
    # "%" is a literal character, not a wildcard.
    assert match({"field": "city", "op": "contains", "value": "%_"}) == {by_city["York%_x"]}
    # is_empty: missing, null and "" (and a value of the wrong type).
    empty_plan = match({"field": "custom_fields.plan", "op": "is_empty"})
    assert {by_city[""], by_city["Boston"], by_city["Newark"], by_city["York%_x"]} == empty_plan
    # Numbers compare as numbers (10 > 2.5), not as text.
    assert by_city["Los Angeles"] in match(
        {"field": "custom_fields.score", "op": "gt", "value": 2.5}
    )
    # An empty group matches everyone.
    assert sql_matching(session, ws, {"match": "any", "rules": []}) == {
        c["id"] for c in world.contacts
    }


@pytest.mark.parametrize("negate", [False, True])
def test_activity_and_list_rules(session, negate):
    events = [
        (0, "open", 0, 1),
        (1, "open", 1, 20),
        (2, "click", 0, 3),
        (3, "delivered", 1, 2),
        (4, "bounce", 0, 40),
        (5, "unsubscribe", 1, 0),
        (6, "sent", 0, 5),
    ]
    world, _actor, lists, campaigns = seed_world(
        session, CONTACTS, events, members=[(0, 0), (0, 3), (1, 4)]
    )
    rules = [{"list": lists[0]}, {"list": lists[1]}]
    for activity in ("received", "opened", "clicked", "bounced", "unsubscribed"):
        rules.append({"activity": activity})
        rules.append({"activity": activity, "campaign_id": campaigns[0]})
        rules.append({"activity": activity, "within_days": 7})
        rules.append({"activity": activity, "campaign_id": campaigns[1], "within_days": 30})
    for rule in rules:
        tree = {"match": "all", "rules": [{**rule, "negate": negate}]}
        assert sql_matching(session, world.workspace_id, tree) == world.matching(tree), tree
