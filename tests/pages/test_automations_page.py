"""The Automations page through app.py with AppTest (issue 18): a new automation from the
list, steps added with the editor's forms (a wait, a branch with then and else), one edited,
activation after asking, a test enrollment, the running rules, the JSON view, a viewer who
may only look, and the automation report on the Reports page."""

from __future__ import annotations

import re

from sqlalchemy import select

from core.automations import run_pass
from core.infra.db import get_sessionmaker, session_scope
from core.models import (
    Automation,
    Contact,
    ContactList,
    CustomField,
    Enrollment,
    Segment,
    Template,
    Workspace,
)
from tests.apptest_db import seed_user
from tests.pages.apptest import by_label, new_app, sign_in
from tests.pages.apptest import texts as _texts


def texts(at) -> str:
    """The page's text without Markdown's bold and icons."""
    return re.sub(r":material/\w+: ", "", _texts(at).replace("**", ""))


def _seed() -> str:
    email = seed_user(slug="acme")
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        assert ws is not None
        ws.from_email, ws.from_name, ws.max_send_rate = "hello@acme.io", "Acme", 1000
        session.add_all(
            [
                Template(workspace_id=ws.id, name=n, subject=n, html=f"<p>{n}</p>")
                for n in ("Welcome", "Tips", "Offer")
            ]
            + [ContactList(workspace_id=ws.id, name="Newsletter")]
            + [Contact(workspace_id=ws.id, email="ann@example.com", first_name="Ann")]
        )
    return email


def _page(email: str):
    at = sign_in(new_app(), email)
    assert not at.exception, at.exception
    at.switch_page("pages/automations.py").run()
    assert not at.exception, at.exception
    return at


def _ok(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _definition() -> dict:
    with session_scope() as session:
        automation = session.scalars(select(Automation)).one()
        return dict(automation.definition)


def test_build_activate_and_test_an_automation(live_db, outbox):
    at = _page(_seed())
    assert "No automation yet." in texts(at)
    by_label(at.text_input, "Name").input("Welcome series")
    by_label(at.selectbox, "Contacts enter when they…").select("join the list “Newsletter”")
    by_label(at.selectbox, "First email").select(_id_of("Welcome"))
    by_label(at.button, "Create draft").click().run()
    _ok(at)
    assert "When Joins the list “Newsletter”" in texts(at)
    assert "1 · Send “Welcome”" in texts(at)

    # A wait, then a branch on opens with a mail on each side.
    at.button(key="au_add_top").click().run()
    by_label(at.selectbox, "Kind of step").select("wait").run()
    by_label(at.number_input, "Wait for").set_value(3)
    by_label(at.button, "Save step").click().run()
    _ok(at)
    assert "2 · Wait 3 days" in texts(at)
    at.button(key="au_add_top").click().run()
    by_label(at.selectbox, "Kind of step").select("branch").run()
    by_label(at.button, "Save step").click().run()
    _ok(at)
    assert "3 · If opened the previous email" in texts(at)
    for arm_name, template in (("then", "Tips"), ("else", "Offer")):
        at.button(key=f"au_add_2_{arm_name}_").click().run()
        by_label(at.selectbox, "Template").select(_id_of(template))
        by_label(at.button, "Save step").click().run()
        _ok(at)
    assert "3 → then 1 · Send “Tips”" in texts(at)
    assert "3 → else 1 · Send “Offer”" in texts(at)
    # Edit the else mail's subject.
    at.button(key="au_edit_2.else.0").click().run()
    by_label(at.text_input, "Subject (empty: the template's)").input("Last chance")
    by_label(at.button, "Save step").click().run()
    _ok(at)
    assert "Send “Offer” · subject “Last chance”" in texts(at)
    steps = _definition()["steps"]
    assert steps[2]["branch"]["else"][0]["send"]["subject"] == "Last chance"

    # Activate, after asking; then enroll Ann for a test.
    by_label(at.button, "Activate").click().run()
    assert "Activate “Welcome series”?" in texts(at)
    by_label(at.button, "Yes, activate").click().run()
    _ok(at)
    assert "Activated “Welcome series”." in texts(at)
    by_label(at.text_input, "Test with one contact (email)").input("nobody@example.com")
    by_label(at.button, "Enroll now").click().run()
    assert "No contact with the email 'nobody@example.com'" in texts(at)
    by_label(at.text_input, "Test with one contact (email)").input("ANN@example.com")
    by_label(at.button, "Enroll now").click().run()
    assert "Enrolled ANN@example.com" in texts(at)
    run_pass(get_sessionmaker())
    at.run()
    shown = texts(at)
    assert "Waiting 0 · Sent 1 · Open rate 0% · Click rate 0%" in shown  # the welcome mail
    assert "Waiting 1" in [c.value for c in at.caption]  # Ann, in the wait now
    assert "Contacts are in this automation" in texts(at)
    assert not any(b.key and b.key.startswith("au_add_") for b in at.button)  # no adding

    # The JSON view: a change the running rules refuse, and one they take.
    area = by_label(at.text_area, "Definition JSON")
    area.input(area.value.replace('"days": 3', '"days": 2'))
    by_label(at.button, "Apply JSON").click().run()
    _ok(at)
    assert _definition()["steps"][1]["wait"] == {"days": 2}
    area = by_label(at.text_area, "Definition JSON")
    area.input(area.value.replace('"steps": [', '"steps": [{"exit": {}},', 1))
    by_label(at.button, "Apply JSON").click().run()
    assert "Steps cannot be added" in texts(at)

    # The list, and the report.
    by_label(at.button, "All automations").click().run()
    _ok(at)
    table = at.dataframe[0].value
    assert list(table["Name"]) == ["Welcome series"]
    assert (table["Enrolled"][0], table["Sent (30 days)"][0]) == (1, 1)
    by_label(at.button, "Open automation").click().run()
    by_label(at.button, "Report").click().run()
    _ok(at)
    shown = texts(at)
    assert "Enrolled" in [m.label for m in at.metric]
    rows = at.table[0].value
    assert list(rows["Sent"]) == ["1", "0", "0"]


def test_a_viewer_looks_but_cannot_change(live_db):
    _seed()
    viewer = seed_user(role="viewer", slug="acme")
    with session_scope() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.slug == "acme"))
        template = session.scalar(select(Template.id).where(Template.name == "Welcome"))
        session.add(
            Automation(
                workspace_id=ws,
                name="Hand-made",
                status="draft",
                definition={
                    "name": "Hand-made",
                    "trigger": {"type": "manual"},
                    "steps": [{"send": {"template_id": template}}],
                },
            )
        )
    at = _page(viewer)
    assert not any(e.label == "Name" for e in at.text_input)  # no "New automation"
    by_label(at.button, "Open automation").click().run()
    _ok(at)
    assert by_label(at.button, "Activate").disabled
    assert by_label(at.button, "Apply JSON").disabled
    assert not any(b.key and b.key.startswith(("au_edit_", "au_add_")) for b in at.button)
    with session_scope() as session:
        assert session.scalar(select(Enrollment.id)) is None


def _id_of(template: str) -> int:
    with session_scope() as session:
        found = session.scalar(select(Template.id).where(Template.name == template))
        assert found is not None
        return found


def test_the_chart_shows_step_names_as_text_not_tags():
    from datetime import date
    from types import SimpleNamespace

    from ui.charts import sends_per_day

    point = SimpleNamespace(day=date(2026, 1, 1), path="0", sent=3)
    figure = sends_per_day([point], {"0": 'Send “<a href="https://evil.example">x</a>”'})
    assert (
        figure.data[0].name == "Send “&lt;a href=&quot;https://evil.example&quot;&gt;x&lt;/a&gt;”"
    )


def test_remove_a_step_only_after_pausing(live_db, outbox):
    from core.automations import create_automation, enroll_contact
    from tests.helpers import actor_of

    email = _seed()
    welcome, tips = _id_of("Welcome"), _id_of("Tips")
    with session_scope() as session:
        from core.models import User

        user = session.scalar(select(User).where(User.email == email))
        ann = session.scalar(select(Contact.id).where(Contact.email == "ann@example.com"))
        actor = actor_of(user)
        steps = [
            {"send": {"template_id": welcome}},
            {"wait": {"days": 3}},
            {"send": {"template_id": tips}},
        ]
        automation = create_automation(
            session, actor, {"name": "Drip", "trigger": {"type": "manual"}, "steps": steps}
        )
        enroll_contact(session, actor, automation.id, ann)
    run_pass(get_sessionmaker())
    at = _page(email)
    by_label(at.button, "Open automation").click().run()
    _ok(at)
    at.button(key="au_remove_1").click().run()
    assert "Remove step 2? Contacts on it move to the next step." in texts(at)
    by_label(at.button, "Yes, remove it").click().run()
    assert "Pause the automation before removing a step" in texts(at)
    by_label(at.button, "Pause").click().run()
    by_label(at.button, "Yes, pause").click().run()
    _ok(at)
    assert "Paused “Drip”." in texts(at)
    at.button(key="au_remove_1").click().run()
    by_label(at.button, "Yes, remove it").click().run()
    _ok(at)
    assert "Removed step 2." in texts(at)
    assert [next(iter(s)) for s in _definition()["steps"]] == ["send", "send"]
    assert "2 · Send “Tips”" in texts(at)
    assert any(c.value.startswith("Waiting 1 · Sent 0") for c in at.caption)  # Ann moved on
    by_label(at.button, "Resume").click().run()
    by_label(at.button, "Yes, resume").click().run()
    _ok(at)
    run_pass(get_sessionmaker())
    with session_scope() as session:
        assert session.scalar(select(Enrollment.status)) == "finished"


def test_new_automations_on_a_segment_and_on_a_date(live_db):
    """The form offers every trigger: a segment to enter, and a date field with an offset
    (validated by the definition's model, as the JSON view is)."""
    email = _seed()
    with session_scope() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.slug == "acme"))
        rules = {"match": "all", "rules": [{"field": "city", "op": "eq", "value": "Berlin"}]}
        session.add_all(
            [
                Segment(workspace_id=ws, name="Berliners", rules=rules),
                CustomField(workspace_id=ws, key="renewal", label="Renewal", type="date"),
                CustomField(workspace_id=ws, key="plan", label="Plan", type="text"),
            ]
        )
    at = _page(email)
    by_label(at.selectbox, "Contacts enter when they…").select("enter a segment").run()
    assert by_label(at.selectbox, "Segment").options == ["Berliners"]
    by_label(at.text_input, "Name").input("Hello Berlin")
    by_label(at.button, "Create draft").click().run()
    _ok(at)
    assert "When Enters the segment “Berliners”" in texts(at)  # its name, not its id
    with session_scope() as session:
        segment_id = session.scalar(select(Segment.id))
        definition = session.scalars(select(Automation.definition)).one()
    assert definition["trigger"] == {"type": "segment_entered", "segment_id": segment_id}
    assert definition["steps"] == [{"send": {"template_id": _id_of("Offer")}}]

    by_label(at.button, "All automations").click().run()
    by_label(at.selectbox, "Contacts enter when they…").select("reach a date").run()
    field = by_label(at.selectbox, "Date field")
    assert field.options == ["Renewal", "Date added (created)"]  # date fields only
    assert "-7 = a week before" in by_label(at.number_input, "Days from the date").help
    field.select("custom_fields.renewal")
    by_label(at.number_input, "Days from the date").set_value(-7)
    by_label(at.text_input, "Name").input("A week before renewal")
    by_label(at.selectbox, "First email").select(_id_of("Tips"))
    by_label(at.button, "Create draft").click().run()
    _ok(at)
    assert "When 7 days before the date in “Renewal”" in texts(at)  # the label, not the key
    with session_scope() as session:
        saved = session.scalar(
            select(Automation.definition).where(Automation.name == "A week before renewal")
        )
    assert saved is not None
    assert saved["trigger"] == {
        "type": "date_field",
        "field": "custom_fields.renewal",
        "offset_days": -7,
        "yearly": False,
    }

    # The model's rules hold here as in the JSON view: a name is needed.
    by_label(at.button, "All automations").click().run()
    by_label(at.selectbox, "Contacts enter when they…").select("reach a date").run()
    by_label(at.button, "Create draft").click().run()
    assert at.error and "name" in at.error[0].value.lower()
    with session_scope() as session:
        assert len(session.scalars(select(Automation.id)).all()) == 2
