"""Settings → Users in core: pending invitations (list, resend, revoke), role changes and
removals, and the last-owner rule (issue 16)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.accounts import auth, members
from core.infra import clock
from core.infra.errors import InvalidToken, NotFound, PermissionDenied, ValidationFailed
from core.models import AuditLog, User
from tests.helpers import actor_of, make_user, make_workspace, message_text, outbox_messages


def _links(outbox) -> list[str]:
    return [
        re.search(r"invite=([\w-]+)", message_text(m)).group(1) for m in outbox_messages(outbox)
    ]


def _audit(session, workspace_id: int) -> list[tuple[str, str | None]]:
    rows = session.execute(
        select(AuditLog.action, AuditLog.target)
        .where(AuditLog.workspace_id == workspace_id)
        .order_by(AuditLog.id)
    ).all()
    return [tuple(r) for r in rows]


def test_pending_invitations_are_listed_per_workspace(session, outbox):
    ws, other = make_workspace(session), make_workspace(session)
    owner = make_user(session, ws)
    make_user(session, other)
    members.invite_user(session, actor_of(owner), "ann@example.com", "editor")
    members.invite_user(session, actor_of(owner), "bob@example.com", "viewer")
    pending = members.pending_invitations(session, actor_of(owner))
    assert {(p.email, p.role, p.invited_by) for p in pending} == {
        ("ann@example.com", "editor", owner.email),
        ("bob@example.com", "viewer", owner.email),
    }
    assert not any(p.expired for p in pending)
    other_owner = session.scalar(select(User).where(User.workspace_id == other.id))
    assert members.pending_invitations(session, actor_of(other_owner)) == []
    # Accepted: no longer pending.
    members.accept_invitation(session, _links(outbox)[0], "Ann", "ann-password-1")
    assert [p.email for p in members.pending_invitations(session, actor_of(owner))] == [
        "bob@example.com"
    ]
    with pytest.raises(ValidationFailed, match="has an invitation already"):
        members.invite_user(session, actor_of(owner), "bob@example.com", "editor")


def test_revoking_an_invitation_kills_its_link(session, outbox):
    ws = make_workspace(session)
    owner = make_user(session, ws)
    members.invite_user(session, actor_of(owner), "carol@example.com", "editor")
    (token,) = _links(outbox)
    assert members.describe_invitation(session, token)[0] == "carol@example.com"
    (inv,) = members.pending_invitations(session, actor_of(owner))
    assert members.revoke_invitation(session, actor_of(owner), inv.id) == "carol@example.com"
    assert members.pending_invitations(session, actor_of(owner)) == []
    with pytest.raises(InvalidToken):
        members.describe_invitation(session, token)
    with pytest.raises(InvalidToken):
        members.accept_invitation(session, token, "Carol", "carol-password-1")
    assert auth.get_user_by_email(session, "carol@example.com") is None
    with pytest.raises(NotFound):
        members.revoke_invitation(session, actor_of(owner), inv.id)
    assert ("invitation_revoked", "carol@example.com") in _audit(session, ws.id)


def test_resending_mails_a_new_link_and_the_old_one_dies(session, outbox):
    ws = make_workspace(session)
    owner = make_user(session, ws)
    admin = make_user(session, ws, role="admin")
    members.invite_user(session, actor_of(owner), "dan@example.com", "editor")
    (inv,) = members.pending_invitations(session, actor_of(owner))
    clock.freeze(clock.now() + timedelta(days=8))  # expired
    try:
        assert members.pending_invitations(session, actor_of(owner))[0].expired
        members.resend_invitation(session, actor_of(admin), inv.id)
        old, new = _links(outbox)
        assert old != new
        with pytest.raises(InvalidToken):
            members.describe_invitation(session, old)
        (again,) = members.pending_invitations(session, actor_of(owner))
        assert (again.id, again.invited_by, again.expired) == (inv.id, admin.email, False)
        user = members.accept_invitation(session, new, "Dan", "dan-password-1")
    finally:
        clock.freeze(None)
    assert (user.workspace_id, user.role) == (ws.id, "editor")
    assert ("invitation_resent", "dan@example.com") in _audit(session, ws.id)


def test_only_admins_manage_invitations_and_only_their_own_workspace(session, outbox):
    ws, other = make_workspace(session), make_workspace(session)
    owner = make_user(session, ws)
    editor = make_user(session, ws, role="editor")
    admin = make_user(session, ws, role="admin")
    stranger = make_user(session, other)
    members.invite_user(session, actor_of(owner), "erin@example.com", "owner")
    (inv,) = members.pending_invitations(session, actor_of(owner))
    for call in (
        lambda: members.pending_invitations(session, actor_of(editor)),
        lambda: members.resend_invitation(session, actor_of(editor), inv.id),
        lambda: members.revoke_invitation(session, actor_of(editor), inv.id),
        # An admin cannot re-issue an owner's invitation: it would grant above them.
        lambda: members.resend_invitation(session, actor_of(admin), inv.id),
    ):
        with pytest.raises(PermissionDenied):
            call()
    for call in (
        lambda: members.resend_invitation(session, actor_of(stranger), inv.id),
        lambda: members.revoke_invitation(session, actor_of(stranger), inv.id),
    ):
        with pytest.raises(NotFound):
            call()
    assert len(members.pending_invitations(session, actor_of(owner))) == 1


def test_the_last_owner_can_be_neither_removed_nor_demoted(session):
    ws = make_workspace(session)
    owner = make_user(session, ws)
    second = make_user(session, ws)  # another owner
    members.change_role(session, actor_of(owner), second.id, "admin")
    # Now `owner` is the only owner: nobody demotes or removes them, themselves included.
    with pytest.raises(ValidationFailed, match="only owner"):
        members.change_role(session, actor_of(owner), owner.id, "editor")
    with pytest.raises(PermissionDenied):
        members.remove_user(session, actor_of(second), owner.id)
    with pytest.raises(ValidationFailed, match="cannot remove yourself"):
        members.remove_user(session, actor_of(owner), owner.id)
    assert session.get(User, owner.id).role == "owner"
    # With two owners again, one may step down and then be removed.
    members.change_role(session, actor_of(owner), second.id, "owner")
    members.change_role(session, actor_of(owner), owner.id, "admin")
    members.remove_user(session, actor_of(second), owner.id)
    session.flush()
    assert session.get(User, owner.id) is None
    actions = [a for a, _ in _audit(session, ws.id)]
    assert actions.count("role_changed") == 3 and "user_removed" in actions


def test_profile_reads_the_signed_in_users_name(session):
    ws = make_workspace(session)
    owner = make_user(session, ws)
    members.update_profile(session, actor_of(owner), "  Olga Owner ")
    assert members.current_user(session, actor_of(owner)).name == "Olga Owner"
