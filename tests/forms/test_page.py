"""The Contacts page's Forms tab and list signup options through app.py with AppTest."""

from __future__ import annotations

from sqlalchemy import select

from core.infra.db import session_scope
from core.models import ContactList, Form, Workspace
from tests.apptest_db import seed_user
from tests.pages.apptest import by_label, new_app, sign_in, texts

HOSTILE = "<b>Bold</b> [x](https://evil.example)"


def _open(role: str, visibility: str = "private"):
    email = seed_user(role=role)
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        news = ContactList(workspace_id=ws.id, name="News", visibility=visibility)
        secret = ContactList(workspace_id=ws.id, name="Secret VIP")  # private
        session.add_all([news, secret])
        session.flush()
        list_id = news.id
    at = sign_in(new_app(), email)
    at.switch_page("pages/contacts.py").run()
    assert not at.exception, at.exception
    return at, list_id


def _labels(elements) -> list[str]:
    return [e.label for e in elements]


def test_an_editor_creates_a_form_and_sees_its_link_snippet_and_preview(live_db):
    at, list_id = _open("editor", "public")
    # A form subscribes only to public lists: the private one is not offered.
    assert by_label(at.multiselect, "Subscribes to").options == ["News"]
    by_label(at.text_input, "Form name (the page's heading)").input(HOSTILE)
    by_label(at.multiselect, "Subscribes to").select(list_id)
    by_label(at.multiselect, "Fields asked besides email").select("first_name")
    by_label(at.multiselect, "Required fields").select("first_name")
    by_label(at.text_area, "Consent text (next to the button; stored with every consent)").input(
        "Yes please."
    )
    by_label(at.button, "Create form").click().run()
    assert not at.exception, at.exception
    assert "Saved the form <b>Bold</b> [x](https" in texts(at)  # escaped, shown as text
    with session_scope() as session:
        form = session.scalar(select(Form))
        assert form.name == HOSTILE and form.list_ids == [list_id]
        assert form.fields == [{"key": "first_name", "required": True}]
        assert form.consent_text == "Yes please." and form.double_opt_in
    assert at.selectbox(key="fm_pick").value == HOSTILE
    codes = [c.value for c in at.code]
    assert f"http://track.example.com/f/{form.id}" in codes
    snippet = next(c for c in codes if c.startswith('<div class="mailwright-signup">'))
    assert f'action="http://track.example.com/f/{form.id}"' in snippet
    assert "&lt;b&gt;Bold&lt;/b&gt;" not in snippet  # the snippet holds the form, not the title
    assert 'name="website"' in snippet and "Yes please." in snippet

    # A required field that is not asked is refused with the reason.
    by_label(at.multiselect, "Fields asked besides email").unselect("first_name")
    by_label(at.button, "Save form").click().run()
    assert "Ask First name before making it required." in texts(at)


def test_list_signup_options_and_no_forms_tab_for_a_viewer(live_db):
    at, list_id = _open("editor")
    # With no public list, the Forms tab says what to do instead of offering nothing.
    assert "Make a list public" in texts(at)
    assert "Form name (the page's heading)" not in _labels(at.text_input)
    by_label(at.radio, "Visibility").set_value("public")
    by_label(at.radio, "Opt-in").set_value("double")
    by_label(at.text_input, "Description").input("Monthly news")
    by_label(at.button, "Save options").click().run()
    assert "Saved the options of News." in texts(at)
    with session_scope() as session:
        lst = session.get(ContactList, list_id)
        assert (lst.visibility, lst.opt_in, lst.description) == ("public", "double", "Monthly news")

    viewer, _ = _open_viewer()
    assert "Form name (the page's heading)" not in _labels(viewer.text_input)
    assert "Save options" not in _labels(viewer.button)


def _open_viewer():
    email = seed_user(role="viewer")
    at = sign_in(new_app(), email)
    at.switch_page("pages/contacts.py").run()
    assert not at.exception, at.exception
    return at, None
