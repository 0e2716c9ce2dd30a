"""Sign-in lockout, password reset, invitations, roles and workspace isolation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from core.accounts import auth, members
from core.infra import clock
from core.infra.config import settings
from core.infra.errors import (
    InvalidToken,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    WeakPassword,
)
from core.models import User
from tests.helpers import (
    PASSWORD,
    actor_of,
    make_user,
    make_workspace,
    message_text,
    outbox_messages,
)


def test_lockout_after_five_failures_and_unlock_after_fifteen_minutes(session):
    ws = make_workspace(session)
    user = make_user(session, ws)
    for _ in range(4):
        assert auth.authenticate(session, user.email, "wrong-password-1") is None
    assert not auth.is_locked(user)
    assert auth.authenticate(session, user.email, "wrong-password-1") is None
    assert auth.is_locked(user)
    # Locked: even the right password fails, exactly like a wrong one.
    assert auth.authenticate(session, user.email, PASSWORD) is None
    assert auth.login_entries(session)[user.email].password_hash != user.password_hash

    clock.advance(timedelta(minutes=14))
    assert auth.authenticate(session, user.email, PASSWORD) is None
    clock.advance(timedelta(minutes=2))
    assert auth.authenticate(session, user.email, PASSWORD) is user
    assert user.failed_logins == 0


def test_unknown_user_is_indistinguishable(session):
    assert auth.authenticate(session, "nobody@example.com", "whatever-123") is None
    auth.record_login_failure(session, "nobody@example.com")  # no error, nothing stored
    # Unknown and locked accounts are checked against a dummy hash of the same bcrypt cost
    # as real ones, so sign-in takes as long as for a real account (no timing oracle).
    cost = auth.hash_password("a-real-password-1").split("$")[2]
    assert auth._locked_hash().split("$")[2] == cost == f"{settings.bcrypt_rounds:02d}"


def test_reset_flow_single_use_and_sessions_end(session, outbox):
    ws = make_workspace(session)
    user = make_user(session, ws)
    before = clock.now().timestamp()
    auth.request_password_reset(session, user.email.upper())
    (mail,) = outbox_messages(outbox)
    assert mail["To"] == user.email
    token = re.search(r"/reset\?token=([\w-]+)", message_text(mail)).group(1)
    assert auth.check_reset_token(session, token) == user.email

    with pytest.raises(WeakPassword):
        auth.reset_password(session, token, "short")
    clock.advance(timedelta(seconds=1))
    auth.reset_password(session, token, "a-brand-new-pass-9")
    assert auth.authenticate(session, user.email, "a-brand-new-pass-9") is user
    assert not auth.session_is_current(user, before)
    with pytest.raises(InvalidToken):
        auth.reset_password(session, token, "another-new-pass-9")


def test_reset_token_expires_after_an_hour(session, outbox):
    user = make_user(session, make_workspace(session))
    auth.request_password_reset(session, user.email)
    token = re.search(r"token=([\w-]+)", message_text(outbox_messages(outbox)[0])).group(1)
    clock.advance(timedelta(minutes=61))
    with pytest.raises(InvalidToken, match="expired"):
        auth.check_reset_token(session, token)


def test_reset_request_for_unknown_address_sends_nothing(session, outbox):
    auth.request_password_reset(session, "ghost@example.com")
    auth.request_password_reset(session, "not an address")
    assert not outbox.exists() or outbox_messages(outbox) == []


def test_invitation_joins_the_inviters_workspace(session, outbox):
    ws = make_workspace(session)
    admin = make_user(session, ws, role="admin")
    members.invite_user(session, actor_of(admin), "new.editor@example.com", "editor")
    token = re.search(r"invite=([\w-]+)", message_text(outbox_messages(outbox)[0])).group(1)
    assert members.describe_invitation(session, token)[:2] == ("new.editor@example.com", "editor")
    user = members.accept_invitation(session, token, "New Editor", "editor-password-1")
    assert (user.workspace_id, user.role) == (ws.id, "editor")
    with pytest.raises(InvalidToken):
        members.accept_invitation(session, token, "Again", "editor-password-1")


def test_roles_are_enforced_in_core(session):
    ws = make_workspace(session)
    owner = make_user(session, ws, role="owner")
    editor = make_user(session, ws, role="editor")
    viewer = make_user(session, ws, role="viewer")
    with pytest.raises(PermissionDenied):
        members.invite_user(session, actor_of(editor), "x@example.com", "viewer")
    with pytest.raises(PermissionDenied):
        members.change_role(session, actor_of(viewer), editor.id, "admin")
    admin = make_user(session, ws, role="admin")
    with pytest.raises(PermissionDenied):
        members.change_role(session, actor_of(admin), editor.id, "owner")
    with pytest.raises(ValidationFailed, match="at least one owner"):
        members.change_role(session, actor_of(owner), owner.id, "admin")
    members.change_role(session, actor_of(owner), editor.id, "admin")
    assert editor.role == "admin"


def test_a_user_cannot_touch_another_workspace(session):
    ws_a, ws_b = make_workspace(session), make_workspace(session)
    owner_a = make_user(session, ws_a)
    user_b = make_user(session, ws_b, role="editor")
    assert [u.email for u in members.list_users(session, actor_of(owner_a))] == [owner_a.email]
    with pytest.raises(NotFound):
        members.change_role(session, actor_of(owner_a), user_b.id, "viewer")
    with pytest.raises(NotFound):
        members.remove_user(session, actor_of(owner_a), user_b.id)
    assert session.get(User, user_b.id).role == "editor"


def test_registration_is_open_only_when_empty_or_allowed(session, monkeypatch):
    from core.infra.config import settings

    if not members.installation_is_empty(session):
        pytest.skip("shared database already has users")
    user = members.register_workspace(
        session, "Acme", "acme", "boss@example.com", "Boss", "first-owner-pass-1"
    )
    assert user.role == "owner"
    with pytest.raises(PermissionDenied):
        members.register_workspace(session, "Other", "other", "o@example.com", "O", "x-password-12")
    monkeypatch.setattr(settings, "allow_signup", True)
    members.register_workspace(session, "Other", "other", "o@example.com", "O", "x-password-12")


def test_password_policy():
    for bad in ["short1!", "onlyletterslong", "x" * 129]:
        with pytest.raises(WeakPassword):
            auth.check_password_policy(bad)
    auth.check_password_policy("letters-and-1")


def test_a_signed_out_session_stays_out_and_is_swept_after_its_cookie_expires(session):
    user = make_user(session, make_workspace(session))
    actor = auth.actor_for(user)
    exp = clock.now().timestamp() + 7 * 86400
    assert not auth.session_is_revoked(session, user.id, exp)
    auth.end_session(session, actor, exp)
    auth.end_session(session, actor, exp)  # twice: no duplicate key
    session.flush()
    assert auth.session_is_revoked(session, user.id, exp)
    assert not auth.session_is_revoked(session, user.id, exp + 1), "other sessions go on"
    assert auth.sweep_revoked_sessions(session) == 0
    clock.advance(timedelta(days=8))
    assert auth.sweep_revoked_sessions(session) == 1


def test_sign_out_everywhere_ends_every_earlier_session(session):
    user = make_user(session, make_workspace(session))
    before = clock.now().timestamp()
    clock.advance(timedelta(seconds=1))
    auth.end_all_sessions(session, auth.actor_for(user))
    assert not auth.session_is_current(user, before)
    assert auth.session_is_current(user, clock.now().timestamp())


def test_a_password_with_outer_spaces_is_refused_as_the_sign_in_form_would_strip_them():
    with pytest.raises(WeakPassword, match="space"):
        auth.check_password_policy(" a-long-password-9")
    with pytest.raises(WeakPassword, match="space"):
        auth.check_password_policy("a-long-password-9 ")
    auth.check_password_policy("a long password 9")  # inner spaces are fine


def test_an_invitation_from_an_admin_later_demoted_grants_nothing(session, outbox):
    ws = make_workspace(session)
    owner = make_user(session, ws, role="owner")
    admin = make_user(session, ws, role="admin")
    members.invite_user(session, actor_of(admin), "second.admin@example.com", "admin")
    token = re.search(r"invite=([\w-]+)", message_text(outbox_messages(outbox)[0])).group(1)
    members.change_role(session, actor_of(owner), admin.id, "editor")
    with pytest.raises(PermissionDenied, match="no longer valid"):
        members.accept_invitation(session, token, "Second", "admin-password-1")
    assert auth.get_user_by_email(session, "second.admin@example.com") is None


def test_password_reset_requests_are_capped_per_address(session, outbox):
    user = make_user(session, make_workspace(session))
    for _ in range(auth.RESETS_PER_HOUR + 5):
        auth.request_password_reset(session, user.email)
    assert len(outbox_messages(outbox)) == auth.RESETS_PER_HOUR
    clock.advance(timedelta(hours=1, minutes=1))
    auth.request_password_reset(session, user.email)
    assert len(outbox_messages(outbox)) == auth.RESETS_PER_HOUR + 1


def test_reset_requests_are_capped_per_client_address(live_db):
    allowed = [auth.reset_request_allowed("203.0.113.9") for _ in range(30)]
    assert allowed[: auth.RESETS_PER_CLIENT_PER_HOUR] == [True] * auth.RESETS_PER_CLIENT_PER_HOUR
    assert not any(allowed[auth.RESETS_PER_CLIENT_PER_HOUR + 1 :])
    assert auth.reset_request_allowed("198.51.100.7"), "another client is not held up"


def test_parallel_sign_ins_cannot_outrun_the_lockout(live_db, backend):
    from concurrent.futures import ThreadPoolExecutor

    from core.infra.db import session_scope
    from tests.apptest_db import seed_user

    email = seed_user()
    checked = []
    real_verify = auth.verify_password

    def counting_verify(password: str, password_hash: str) -> bool:
        if password_hash != auth._locked_hash():
            checked.append(password)
        return real_verify(password, password_hash)

    auth.verify_password = counting_verify
    try:
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(lambda i: auth.check_login(email, f"guess-{i}-x1"), range(12)))
    finally:
        auth.verify_password = real_verify
    assert not any(results)
    assert len(checked) <= settings.login_lockout_attempts, f"{len(checked)} guesses were checked"
    with session_scope() as session:
        assert auth.is_locked(auth.get_user_by_email(session, email))
    assert not auth.check_login(email, PASSWORD), "locked: even the right password fails"
