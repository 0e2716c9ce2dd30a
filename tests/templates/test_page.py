"""pages/templates.py through app.py with AppTest: the editor (HTML source mode; the Quill
component is covered by the browser test), preview, test send, the library and the AI tab."""

from __future__ import annotations

from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Campaign, Contact, CustomField, Template, Variant, Workspace
from tests.apptest_db import seed_user
from tests.helpers import outbox_messages
from tests.pages.apptest import by_label, new_app, sign_in, texts

HTML = (
    "<html><head><style>p.lead{color:#c00}</style></head><body>\n"
    '<p class="lead">Hi {{ first_name | default("there") }},</p>\n'
    "<p>Your plan: {{ custom_fields.plan }}</p>\n</body></html>"
)


def _workspace_id() -> int:
    with session_scope() as session:
        return session.scalar(select(Workspace.id).where(Workspace.slug == "acme"))


def open_templates(email: str):
    at = sign_in(new_app(), email)
    at.switch_page("pages/templates.py").run()
    assert not at.exception
    return at


def new_template(at, name: str, subject: str, html: str):
    by_label(at.button, "New template").click()
    at.run()
    by_label(at.text_input, "Name").input(name)
    by_label(at.text_input, "Default subject").input(subject)
    by_label(at.radio, "Editing mode").set_value("HTML source")
    at.run()
    by_label(at.text_area, "HTML").input(html)
    return at.run()


def test_edit_preview_save_and_send_a_test(live_db, outbox):
    email = seed_user()
    ws = _workspace_id()
    with session_scope() as session:
        session.add(Contact(workspace_id=ws, email="ann@example.com", first_name="Ann"))
    at = open_templates(email)
    at = new_template(at, "Welcome", "Welcome, {{ first_name }}", HTML)
    assert not at.exception
    # custom_fields.plan is not a field yet: a warning, not an error.
    assert any("custom_fields.plan" in w.value for w in at.warning)
    # A field added meanwhile shows up in "Insert variable" on the next run, no restart
    # (HTML source mode: the snippet to copy, or added at the end).
    with session_scope() as session:
        session.add(CustomField(workspace_id=ws, key="plan", label="Plan"))
    at.run()
    assert not any("custom_fields.plan" in w.value for w in at.warning)
    variable = by_label(at.selectbox, "Variable")
    index = next(i for i, o in enumerate(variable.options) if "custom_fields.plan" in o)
    variable.select_index(index)
    at.run()
    by_label(at.text_input, "Fallback when empty").input("free")
    at.run()
    by_label(at.button, "Add at the end").click()
    at.run()
    html = by_label(at.text_area, "HTML").value
    assert html.startswith(HTML) and html.endswith('{{ custom_fields.plan | default("free") }}')

    # Preview with sample data, then with a real contact found by search.
    assert "**Subject:** Welcome, Alex" in texts(at)
    by_label(at.text_input, "Find a contact").input("ann")
    at.run()
    by_label(at.selectbox, "Preview with").select_index(1)
    at.run()
    assert "**Subject:** Welcome, Ann" in texts(at)
    plain = at.code[-1].value
    assert plain.startswith("Hi Ann,") and "Unsubscribe:" in plain

    by_label(at.button, "Save template").click()
    at.run()
    assert "Saved." in texts(at)
    with session_scope() as session:
        saved = session.scalars(select(Template)).one()
        assert saved.subject == "Welcome, {{ first_name }}" and saved.html == html
        assert saved.text is None  # generated

    by_label(at.text_input, "Send a test to").input("me@example.com")
    by_label(at.button, "Send test").click()
    at.run()
    assert "Test sent to me@example.com." in texts(at)
    [message] = outbox_messages(outbox)
    assert message["Subject"] == "[Test] Welcome, Ann"
    html_part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    assert 'style="color: #c00;"' in html_part.get_payload(decode=True).decode()


def test_syntax_errors_show_the_line_and_block_saving(live_db):
    at = open_templates(seed_user())
    at = new_template(at, "Broken", "Hi", "<p>one</p>\n<p>{% if first_name %}x</p>")
    assert any("Html (line 2):" in e.value and "endif" in e.value for e in at.error)
    assert by_label(at.button, "Save template").disabled


def test_library_duplicate_and_guarded_delete(live_db):
    email = seed_user()
    ws = _workspace_id()
    with session_scope() as session:
        template = Template(workspace_id=ws, name="Spring news", subject="Spring", html="<p>x</p>")
        session.add(template)
        session.flush()
        campaign = Campaign(workspace_id=ws, name="Spring blast", status="sending")
        campaign.variants.append(Variant(label="A", template_id=template.id))
        session.add(campaign)
    at = open_templates(email)
    by_label(at.button, "Duplicate").click()
    at.run()
    assert "Created “Copy of Spring news”." in texts(at)
    by_label(at.text_input, "Search templates").input("copy")
    at.run()
    assert "Copy of Spring news" in texts(at) and "**Spring news**" not in texts(at)
    by_label(at.text_input, "Search templates").input("")
    by_label(at.selectbox, "Sort by").select("name")
    at.run()
    delete = [b for b in at.button if b.label == "Delete"]
    delete[1].click()  # sorted by name: "Copy of…" then "Spring news"
    at.run()
    by_label(at.button, "Yes, delete").click()
    at.run()
    assert at.error and "“Spring blast” (sending)" in texts(at)
    with session_scope() as session:
        assert len(session.scalars(select(Template)).all()) == 2


def test_ai_assistant_streams_a_draft_into_the_editor(live_db, fake_openai):
    at = open_templates(seed_user())
    at = new_template(at, "AI", "Hi", "<p>Old body</p>")
    fake_openai.behaviour.answer = '<p>Spring is here, {{ first_name | default("friend") }}!</p>'
    by_label(at.text_area, "Brief").input("spring sale")
    by_label(at.button, "Ask the assistant").click()
    at.run()
    assert not at.exception
    by_label(at.button, "Replace the body").click()
    at.run()
    body = by_label(at.text_area, "HTML").value
    assert body == fake_openai.behaviour.answer

    # Five subject lines; the chosen one becomes the default subject.
    fake_openai.behaviour.answer = "One\nTwo for {{ first_name }}\nThree\nFour\nFive"
    by_label(at.selectbox, "What should it do?").select("subjects")
    at.run()
    by_label(at.button, "Ask the assistant").click()
    at.run()
    by_label(at.radio, "Subject lines").set_value("Two for {{ first_name }}")
    at.run()
    by_label(at.button, "Use this subject").click()
    at.run()
    assert by_label(at.text_input, "Default subject").value == "Two for {{ first_name }}"
    by_label(at.selectbox, "What should it do?").select("draft")
    at.run()

    # A failing server shows the reason and leaves the body alone.
    fake_openai.behaviour.status = 500
    by_label(at.text_area, "Brief").input("another")
    by_label(at.button, "Ask the assistant").click()
    at.run()
    assert any("answered with an error (500)" in e.value for e in at.error)
    assert by_label(at.text_area, "HTML").value == body


def test_preview_frame_is_sandboxed_and_cannot_be_broken_out_of():
    from ui.preview import preview_frame

    email = '<p onclick="x()">Hi</p>"></iframe><script>alert(1)</script>'
    frame = preview_frame(email, 375)
    assert frame.count("<iframe") == 1 and frame.count("</iframe>") == 1
    assert 'sandbox=""' in frame and "width:375px" in frame
    assert "<script>" not in frame and "&lt;script&gt;" in frame
