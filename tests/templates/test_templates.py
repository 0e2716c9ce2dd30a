"""core/content/templates.py: the library, variables, preview and test sends (SQLite and PG)."""

from __future__ import annotations

import re

import pytest

from core.content.rendering import TemplateProblem
from core.content.templates import (
    TemplateDraft,
    create_template,
    delete_template,
    duplicate_template,
    list_templates,
    list_variables,
    preview,
    send_test,
    update_template,
    validate_draft,
)
from core.infra.errors import InvalidToken, NotFound, PermissionDenied, ValidationFailed
from core.ingest import tracking
from core.models import Campaign, CustomField, Template, Variant, Workspace
from tests.helpers import (
    actor_of,
    make_contact,
    make_user,
    make_workspace,
    message_text,
    outbox_messages,
)

HTML = '<p>Hi {{ first_name | default("there") }}, your plan is {{ custom_fields.plan }}.</p>'


@pytest.fixture
def owner(session):
    workspace = make_workspace(session, name="Acme Shoes", postal_address="1 Main St")
    return actor_of(make_user(session, workspace))


def draft(name="Welcome", subject="Welcome, {{ first_name }}", html=HTML, text=None):
    return TemplateDraft(name=name, subject=subject, html=html, text=text)


def test_create_search_sort_update_duplicate(session, owner):
    session.add(CustomField(workspace_id=owner.workspace_id, key="plan", label="Plan"))
    first, warnings = create_template(session, owner, draft())
    assert warnings == []
    second, _ = create_template(session, owner, draft(name="April sale", subject="20% off"))
    with pytest.raises(ValidationFailed, match="already exists"):
        create_template(session, owner, draft(name="welcome"))
    assert [t.name for t in list_templates(session, owner, sort="name")] == [
        "April sale",
        "Welcome",
    ]
    assert [t.name for t in list_templates(session, owner, search="OFF")] == ["April sale"]
    update_template(session, owner, first.id, draft(subject="Hello again"))
    session.flush()
    assert [t.name for t in list_templates(session, owner, sort="updated")][0] == "Welcome"
    copy = duplicate_template(session, owner, first.id)
    again = duplicate_template(session, owner, first.id)
    assert (copy.name, again.name) == ("Copy of Welcome", "Copy of Welcome (2)")
    assert copy.html == first.html and copy.subject == "Hello again"


def test_broken_templates_are_not_saved_and_unknown_names_warn(session, owner):
    with pytest.raises(TemplateProblem) as err:
        create_template(session, owner, draft(html="<p>ok</p>\n<p>{{ first_name }</p>"))
    assert err.value.line == 2
    with pytest.raises(ValidationFailed, match="by URL"):
        create_template(session, owner, draft(html='<img src="data:image/png;base64,AAAA">'))
    _, warnings = create_template(session, owner, draft(html="<p>{{ frist_name }}</p>"))
    assert any("frist_name" in w for w in warnings)
    assert any("custom_fields.plan" in w for w in validate_draft(session, owner, draft()))
    assert session.query(Template).filter_by(workspace_id=owner.workspace_id).count() == 1


def test_variables_follow_custom_field_changes(session, owner):
    names = [v.name for v in list_variables(session, owner)]
    assert names[:2] == ["email", "first_name"] and "unsubscribe_url" in names
    assert not any(n.startswith("custom_fields.") for n in names)
    field = CustomField(workspace_id=owner.workspace_id, key="plan", label="Plan")
    session.add(field)
    session.flush()
    variables = {v.name: v for v in list_variables(session, owner)}
    assert variables["custom_fields.plan"].label == "Plan"
    assert variables["custom_fields.plan"].snippet("free") == (
        '{{ custom_fields.plan | default("free") }}'
    )
    assert variables["first_name"].snippet('say "hi"') == (
        '{{ first_name | default("say \\"hi\\"") }}'
    )
    assert variables["unsubscribe_url"].snippet("x") == "{{ unsubscribe_url }}"
    # The snippet renders: the fallback really is a valid Jinja string.
    result = preview(session, owner, draft(html=variables["first_name"].snippet('say "hi"')), None)
    assert "Alex" in result.rendered.html
    session.delete(field)
    session.flush()
    assert "custom_fields.plan" not in {v.name for v in list_variables(session, owner)}


def test_delete_is_refused_while_a_scheduled_or_sending_campaign_uses_it(session, owner):
    template, _ = create_template(session, owner, draft())
    campaign = Campaign(workspace_id=owner.workspace_id, name="Spring", status="scheduled")
    campaign.variants.append(Variant(label="A", template_id=template.id))
    session.add(campaign)
    session.flush()
    with pytest.raises(ValidationFailed, match="“Spring” \\(scheduled\\)"):
        delete_template(session, owner, template.id)
    campaign.status = "sent"
    session.flush()
    delete_template(session, owner, template.id)
    assert session.get(Template, template.id) is None


def test_workspaces_and_roles_are_respected(session, owner):
    template, _ = create_template(session, owner, draft())
    other = actor_of(make_user(session, make_workspace(session)))
    assert list_templates(session, other) == []
    with pytest.raises(NotFound):
        delete_template(session, other, template.id)
    viewer = actor_of(make_user(session, session.get(Workspace, owner.workspace_id), "viewer"))
    assert [t.id for t in list_templates(session, viewer)] == [template.id]
    with pytest.raises(PermissionDenied):
        update_template(session, viewer, template.id, draft(name="Mine"))


def test_preview_with_a_contact_and_with_sample_data(session, owner):
    session.add(CustomField(workspace_id=owner.workspace_id, key="plan", label="Plan"))
    create_template(session, owner, draft())
    workspace = session.get(Workspace, owner.workspace_id)
    ann = make_contact(
        session, workspace, first_name="Ann", email="ann@example.com", custom_fields={"plan": "Pro"}
    )
    result = preview(session, owner, draft(), ann.id)
    assert result.rendered.subject == "Welcome, Ann"
    assert "Hi Ann, your plan is Pro." in result.rendered.html
    assert "1 Main St" in result.rendered.html and "Unsubscribe" in result.rendered.html
    assert "Hi Ann, your plan is Pro." in result.rendered.text
    assert result.recipient == "ann@example.com"
    # The preview's unsubscribe link cannot unsubscribe Ann: a test link, naming no one.
    token = re.search(r'/u/test/([^"]+)"', result.rendered.html).group(1)
    assert tracking.parse_test_send_unsubscribe(token) == owner.workspace_id
    with pytest.raises(InvalidToken):
        tracking.parse_unsubscribe(token)
    sample = preview(session, owner, draft(), None)
    assert "Hi Alex, your plan is sample plan." in sample.rendered.html
    stranger = make_contact(session, make_workspace(session))
    with pytest.raises(NotFound):
        preview(session, owner, draft(), stranger.id)


def test_send_test_goes_through_the_transport(session, owner, outbox):
    create_template(session, owner, draft())
    workspace = session.get(Workspace, owner.workspace_id)
    workspace.from_email = "news@acme.example"
    ann = make_contact(session, workspace, first_name="Ann")
    send_test(session, owner, draft(text="Plain for {{ first_name }}"), "Me@Example.com", ann.id)
    [message] = outbox_messages(outbox)
    assert message["To"] == "me@example.com" and message["Subject"] == "[Test] Welcome, Ann"
    assert message["From"] == "Acme Shoes <news@acme.example>"
    assert message_text(message).startswith("Plain for Ann")
    with pytest.raises(ValidationFailed):
        send_test(session, owner, draft(), "not-an-address")


def test_tags_typed_into_the_visual_editor_are_tidied():
    from core.content.templates import tidy_editor_html

    quill = (
        "<p>{% if custom_fields.visits &gt; 1 %}Welcome back{% endif %}"
        ' &amp; {{\xa0first_name | default("a &lt; b") }} &lt;3</p>'
    )
    assert tidy_editor_html(quill) == (
        "<p>{% if custom_fields.visits > 1 %}Welcome back{% endif %}"
        ' &amp; {{ first_name | default("a < b") }} &lt;3</p>'
    )
