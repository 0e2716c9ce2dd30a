"""The Segments page through app.py: builder, live count, JSON view, save, delete guard."""

from __future__ import annotations

import json

from sqlalchemy import select

from core.infra.db import session_scope
from core.models import (
    Campaign,
    Contact,
    ContactList,
    CustomField,
    ListMembership,
    Segment,
    Workspace,
)
from tests.apptest_db import seed_user
from tests.pages.apptest import by_label, new_app, sign_in
from tests.pages.apptest import texts as _texts


def _seed() -> tuple[str, int]:
    email = seed_user(slug="acme")
    with session_scope() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.slug == "acme"))
        session.add(CustomField(workspace_id=ws, key="score", label="Score", type="number"))
        vip = ContactList(workspace_id=ws, name="VIP")
        session.add(vip)
        people = [
            Contact(
                workspace_id=ws, email="ann@example.com", city="Paris", custom_fields={"score": 9}
            ),
            Contact(
                workspace_id=ws, email="bob@example.com", city="paris", custom_fields={"score": 2}
            ),
            Contact(workspace_id=ws, email="cy@example.com", city="Lyon", custom_fields={}),
        ]
        session.add_all(people)
        session.flush()
        session.add(ListMembership(list_id=vip.id, contact_id=people[0].id))
        return email, vip.id


def texts(at) -> str:
    return _texts(at) + "\n" + "\n".join(str(w.value) for w in at.warning)


def _metric(at) -> str:
    return at.metric[0].value


def test_build_count_save_and_delete_guard(live_db):
    email, vip = _seed()
    at = sign_in(new_app(), email)
    at.switch_page("pages/segments.py").run()
    assert not at.exception, at.exception
    assert _metric(at) == "3"  # no conditions: everyone

    by_label(at.button, "Add condition").click()
    at.run()
    # A condition added a moment ago shows no error before the user has typed: it waits.
    assert "needs a text value" not in texts(at)
    assert "1 new condition left out of the count" in texts(at)
    assert _metric(at) == "3"
    by_label(at.text_input, "Value").input("PARIS")
    at.run()
    assert _metric(at) == "2"
    assert "ann@example.com" in str(at.dataframe[0].value)

    # Switch the condition to the custom number field and an operator that fits it.
    by_label(at.selectbox, "Field").select("custom_fields.score")
    at.run()
    by_label(at.selectbox, "Operator").select("gt")
    at.run()
    by_label(at.number_input, "Value").set_value(5)
    at.run()
    assert _metric(at) == "1"

    # Power users: the JSON view, validated before it replaces the builder's rules.
    area = by_label(at.text_area, "Rules JSON")
    assert json.loads(area.value)["rules"][0] == {
        "field": "custom_fields.score",
        "op": "gt",
        "value": 5,
    }
    area.input(json.dumps({"match": "all", "rules": [{"field": "city", "op": "gt", "value": 1}]}))
    by_label(at.button, "Apply JSON").click()
    at.run()
    assert "does not fit a text field" in texts(at)
    area = by_label(at.text_area, "Rules JSON")
    area.input(
        json.dumps(
            {
                "match": "any",
                "rules": [{"list": vip}, {"field": "city", "op": "eq", "value": "lyon"}],
            }
        )
    )
    by_label(at.button, "Apply JSON").click()
    at.run()
    assert not at.exception, at.exception
    assert _metric(at) == "2"

    by_label(at.text_input, "Segment name").input("VIP or Lyon")
    by_label(at.button, "Save").click()
    at.run()
    assert "Saved segment 'VIP or Lyon'" in texts(at)
    with session_scope() as session:
        segment = session.scalar(select(Segment).where(Segment.name == "VIP or Lyon"))
        assert segment.rules["match"] == "any"
        session.add(
            Campaign(
                workspace_id=segment.workspace_id,
                name="Autumn sale",
                status="scheduled",
                audience={"segment_id": segment.id},
            )
        )
    assert "VIP or Lyon" in str(at.dataframe[-1].value)

    by_label(at.button, "Delete").click()
    at.run()
    assert "Autumn sale" in texts(at)  # refused while a scheduled campaign uses it
    by_label(at.button, "Duplicate").click()
    at.run()
    assert "VIP or Lyon (copy)" in texts(at)
    by_label(at.button, "Delete").click()
    at.run()
    assert "Segment deleted." in texts(at)
    with session_scope() as session:
        assert session.scalars(select(Segment.name)).all() == ["VIP or Lyon"]
