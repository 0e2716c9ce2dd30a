"""Settings through app.py with AppTest: pending invitations (resend, revoke after asking),
removing a user after asking, the profile's name and password fields, and the line that
says where mail goes (issue 16)."""

from __future__ import annotations

import re

from sqlalchemy import select

from core.accounts import auth, members
from core.infra.db import session_scope
from core.infra.errors import InvalidToken
from core.models import Invitation, User
from tests.apptest_db import seed_user
from tests.helpers import PASSWORD, message_text, outbox_messages
from tests.pages.apptest import by_label, new_app, sign_in, texts


def _settings(email: str):
    at = sign_in(new_app(), email)
    assert not at.exception, at.exception
    at.switch_page("pages/settings.py").run()
    assert not at.exception, at.exception
    return at


def _invitation_ids() -> list[int]:
    with session_scope() as session:
        return list(session.scalars(select(Invitation.id).order_by(Invitation.id)))


def test_invite_resend_and_revoke(live_db, outbox):
    at = _settings(seed_user())
    assert "No invitation is waiting to be accepted." in texts(at)
    by_label(at.text_input, "Email").input("new.person@example.com")
    by_label(at.button, "Send invitation").click().run()
    assert not at.exception, at.exception
    assert "Invitation sent to new.person@example.com." in texts(at)
    assert "new.person@example.com** as editor" in texts(at)
    (inv_id,) = _invitation_ids()

    at.button(key=f"resend_{inv_id}").click().run()
    assert "the old link no longer works" in texts(at)
    first, second = (
        re.search(r"invite=([\w-]+)", message_text(m)).group(1) for m in outbox_messages(outbox)
    )
    with session_scope() as session:
        assert members.describe_invitation(session, second)[0] == "new.person@example.com"

    at.button(key=f"revoke_{inv_id}").click().run()
    assert "Revoke the invitation to new.person@example.com?" in texts(at)
    assert _invitation_ids() == [inv_id], "asking first changes nothing"
    at.button(key=f"confirm_revoke_{inv_id}_yes").click().run()
    assert not at.exception, at.exception
    assert "Revoked the invitation to new.person@example.com." in texts(at)
    assert "No invitation is waiting to be accepted." in texts(at)
    assert _invitation_ids() == []
    with session_scope() as session:
        for token in (first, second):
            try:
                members.describe_invitation(session, token)
            except InvalidToken:
                continue
            raise AssertionError("a revoked invitation's link still works")


def test_remove_a_user_after_asking(live_db):
    owner = seed_user()
    editor = seed_user(role="editor", slug="acme")
    at = _settings(owner)
    assert by_label(at.selectbox, "User").value is not None
    by_label(at.button, "Remove user").click().run()
    assert f"Remove {editor} from this workspace?" in texts(at)
    by_label(at.button, "Yes, remove").click().run()
    assert not at.exception, at.exception
    assert f"Removed {editor}." in texts(at)
    with session_scope() as session:
        assert auth.get_user_by_email(session, editor) is None


def test_profile_name_and_password_fields(live_db):
    email = seed_user()
    with session_scope() as session:
        session.scalar(select(User).where(User.email == email)).name = "Olga Owner"
    at = _settings(email)
    assert by_label(at.text_input, "Your name").value == "Olga Owner"
    by_label(at.text_input, "Current password").input(PASSWORD)
    by_label(at.text_input, "New password").input("a-new-password-2")
    by_label(at.button, "Change password").click().run()
    assert not at.exception, at.exception
    assert "Password changed" in texts(at)
    assert by_label(at.text_input, "Current password").value == ""
    assert by_label(at.text_input, "New password").value == ""


def test_settings_say_where_mail_goes(live_db):
    at = _settings(seed_user())
    assert "Mail goes to the local outbox" in texts(at)
    assert "nothing leaves this machine" in texts(at)
    assert any("Production: PostgreSQL, Redis and SES" in e.label for e in at.expander)


def test_the_last_owner_cannot_step_down(live_db):
    owner = seed_user()
    at = _settings(owner)
    # Alone in the workspace: the list holds only yourself.
    assert list(by_label(at.selectbox, "User").options) == [f"{owner} (owner) · you"]
    assert by_label(at.button, "Remove user").disabled
    by_label(at.selectbox, "New role").set_value("admin").run()
    by_label(at.button, "Change role").click().run()
    assert not at.exception, at.exception
    assert "only owner" in texts(at) and "make someone else owner first" in texts(at)
    with session_scope() as session:
        assert auth.get_user_by_email(session, owner).role == "owner"


def test_a_viewer_sees_users_but_manages_nothing(live_db):
    owner = seed_user()
    viewer = seed_user(role="viewer", slug="acme")
    with session_scope() as session:
        inviter = auth.actor_for(auth.get_user_by_email(session, owner))
        members.invite_user(session, inviter, "someone@example.com", "editor")
    at = _settings(viewer)
    assert "Only owners and admins invite people and change roles." in texts(at)
    assert "Pending invitations" not in [h.value for h in at.subheader]
    assert "someone@example.com" not in texts(at)
    assert not [b for b in at.button if b.label in ("Revoke", "Resend", "Remove user")]
