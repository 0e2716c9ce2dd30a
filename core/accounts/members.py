"""The people of a workspace: profiles, roles, removal (never the last owner),
invitations (mail, resend, revoke, accept) and registration of a new workspace.

Signing in, passwords and sessions are core.accounts.auth; this module builds on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.accounts.auth import (
    actor_for,
    create_user,
    ensure_workspace,
    get_user_by_email,
    normalize_email,
)
from core.infra import clock
from core.infra.config import settings
from core.infra.db import referenced
from core.infra.errors import InvalidToken, NotFound, PermissionDenied, ValidationFailed
from core.infra.permissions import ROLE_RANK, Actor
from core.infra.tokens import hash_token, random_token
from core.mail.compose import send_system_mail
from core.models import ROLES, AuditLog, Invitation, User, Workspace


def current_user(session: Session, actor: Actor) -> User:
    """The signed-in user's own row (the profile shows its name)."""
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None or user.workspace_id != actor.workspace_id:
        raise NotFound("No such user.")
    return user


def update_profile(session: Session, actor: Actor, name: str) -> User:
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound("No such user.")
    user.name = name.strip()[:200] or user.name
    return user


def list_users(session: Session, actor: Actor) -> list[User]:
    actor.require("read")
    return list(
        session.scalars(
            select(User).where(User.workspace_id == actor.workspace_id).order_by(User.email)
        )
    )


def _workspace_user(session: Session, actor: Actor, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.workspace_id != actor.workspace_id:
        raise NotFound("No such user in this workspace.")
    return user


def _check_can_grant(actor: Actor, role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}.")
    if ROLE_RANK[role] > ROLE_RANK[actor.role]:
        raise PermissionDenied("You cannot give a role above your own.")


def change_role(session: Session, actor: Actor, user_id: int, role: str) -> User:
    actor.require("admin")
    _check_can_grant(actor, role)
    user = _workspace_user(session, actor, user_id)
    if ROLE_RANK[user.role] > ROLE_RANK[actor.role]:
        raise PermissionDenied("You cannot change the role of someone above you.")
    if user.role == "owner" and role != "owner" and _owner_count(session, actor) <= 1:
        raise ValidationFailed(_last_owner(user, "change the role of"))
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="role_changed",
            target=user.email,
            detail={"from": user.role, "to": role},
        )
    )
    user.role = role
    return user


def _last_owner(user: User, doing: str) -> str:
    return (
        f"{user.email} is this workspace's only owner, and a workspace needs at least one "
        f"owner: make someone else owner first, then {doing} {user.email}."
    )


def _owner_count(session: Session, actor: Actor) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.workspace_id == actor.workspace_id, User.role == "owner")
        )
        or 0
    )


def remove_user(session: Session, actor: Actor, user_id: int) -> None:
    actor.require("admin")
    user = _workspace_user(session, actor, user_id)
    if user.id == actor.user_id:
        raise ValidationFailed("You cannot remove yourself.")
    if ROLE_RANK[user.role] > ROLE_RANK[actor.role]:
        raise PermissionDenied("You cannot remove someone above you.")
    if user.role == "owner" and _owner_count(session, actor) <= 1:
        raise ValidationFailed(_last_owner(user, "remove"))
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="user_removed",
            target=user.email,
        )
    )
    session.delete(user)


INVITATION_DAYS = 7


def _mail_invitation(session: Session, actor: Actor, email: str, role: str, token: str) -> str:
    workspace = referenced(session, Workspace, actor.workspace_id)
    link = f"{settings.app_base_url.rstrip('/')}/register?invite={token}"
    send_system_mail(
        email,
        f"You are invited to {workspace.name} on Mailwright",
        f"{actor.email} invited you to join {workspace.name} on Mailwright as {role}. "
        f"Open the link below within {INVITATION_DAYS} days to choose your password.",
        link=link,
    )
    return link


def invite_user(session: Session, actor: Actor, email: str, role: str) -> str:
    """Mail an invitation to join this workspace with `role`; returns the link."""
    actor.require("admin")
    _check_can_grant(actor, role)
    email = normalize_email(email)
    if get_user_by_email(session, email) is not None:
        raise ValidationFailed(f"{email} already has an account.")
    if any(p.email == email for p in pending_invitations(session, actor)):
        raise ValidationFailed(
            f"{email} has an invitation already: resend or revoke it under Pending invitations."
        )
    token = random_token()
    session.add(
        Invitation(
            workspace_id=actor.workspace_id,
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by_id=actor.user_id,
            expires_at=clock.now() + timedelta(days=INVITATION_DAYS),
        )
    )
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="user_invited",
            target=email,
            detail={"role": role},
        )
    )
    session.flush()
    return _mail_invitation(session, actor, email, role, token)


@dataclass
class PendingInvitation:
    """An invitation not yet accepted (expired ones too: they can be resent)."""

    id: int
    email: str
    role: str
    invited_by: str  # the inviter's email, "" when that user is gone
    created_at: datetime
    expires_at: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= clock.now()


def pending_invitations(session: Session, actor: Actor) -> list[PendingInvitation]:
    """This workspace's invitations nobody has accepted yet, newest first (admins)."""
    actor.require("admin")
    rows = session.execute(
        select(Invitation, User.email)
        .outerjoin(User, User.id == Invitation.invited_by_id)
        .where(Invitation.workspace_id == actor.workspace_id, Invitation.accepted_at.is_(None))
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    ).all()
    return [
        PendingInvitation(
            inv.id,
            inv.email,
            inv.role,
            inviter or "",
            clock.as_utc(inv.created_at) or clock.now(),
            clock.as_utc(inv.expires_at) or clock.now(),
        )
        for inv, inviter in rows
    ]


def _pending(session: Session, actor: Actor, invitation_id: int) -> Invitation:
    actor.require("admin")
    inv = session.get(Invitation, invitation_id)
    if inv is None or inv.workspace_id != actor.workspace_id or inv.accepted_at is not None:
        raise NotFound("That invitation is not pending in this workspace any more.")
    return inv


def resend_invitation(session: Session, actor: Actor, invitation_id: int) -> str:
    """Mail a new link for a pending invitation, valid for another week; the old link
    stops working (only the new token's hash is kept). The sender vouches for it now."""
    inv = _pending(session, actor, invitation_id)
    _check_can_grant(actor, inv.role)
    token = random_token()
    inv.token_hash = hash_token(token)
    inv.invited_by_id = actor.user_id
    inv.expires_at = clock.now() + timedelta(days=INVITATION_DAYS)
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="invitation_resent",
            target=inv.email,
        )
    )
    session.flush()
    return _mail_invitation(session, actor, inv.email, inv.role, token)


def revoke_invitation(session: Session, actor: Actor, invitation_id: int) -> str:
    """Withdraw a pending invitation: its link stops working at once. Returns the email."""
    inv = _pending(session, actor, invitation_id)
    email = inv.email
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="invitation_revoked",
            target=email,
            detail={"role": inv.role},
        )
    )
    session.delete(inv)
    session.flush()
    return email


def _valid_invitation(session: Session, token: str) -> Invitation:
    inv = session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token or "")))
    if inv is None or inv.accepted_at is not None:
        raise InvalidToken("This invitation is not valid or was already used.")
    if clock.as_utc(inv.expires_at) <= clock.now():
        raise InvalidToken("This invitation has expired. Ask for a new one.")
    return inv


def describe_invitation(session: Session, token: str) -> tuple[str, str, str]:
    """(email, role, workspace name) of a valid invitation."""
    inv = _valid_invitation(session, token)
    return inv.email, inv.role, referenced(session, Workspace, inv.workspace_id).name


def accept_invitation(session: Session, token: str, name: str, password: str) -> User:
    inv = _valid_invitation(session, token)
    # The invitation grants what its inviter may grant today, not what they could then.
    inviter = session.get(User, inv.invited_by_id) if inv.invited_by_id else None
    try:
        if inviter is None or inviter.workspace_id != inv.workspace_id:
            raise PermissionDenied("no inviter")
        actor = actor_for(inviter)
        actor.require("admin")
        _check_can_grant(actor, inv.role)
    except PermissionDenied as exc:
        raise PermissionDenied(
            "This invitation is no longer valid (whoever sent it can no longer grant it). "
            "Ask an admin for a new one."
        ) from exc
    workspace = referenced(session, Workspace, inv.workspace_id)
    user = create_user(session, workspace, inv.email, password, inv.role, name=name)
    inv.accepted_at = clock.now()
    return user


def installation_is_empty(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(User)) == 0


def registration_open(session: Session) -> bool:
    """Whether a visitor without an invitation may create a workspace."""
    return settings.allow_signup or installation_is_empty(session)


def register_workspace(
    session: Session,
    workspace_name: str,
    slug: str,
    email: str,
    name: str,
    password: str,
) -> User:
    """A new workspace with its first owner: the first visitor, or anyone with ALLOW_SIGNUP."""
    if not registration_open(session):
        raise PermissionDenied("Sign-up is closed here: ask an admin for an invitation.")
    slug = slug.strip().lower()
    if session.scalar(select(Workspace).where(Workspace.slug == slug)) is not None:
        raise ValidationFailed(f"The workspace {slug!r} exists already.")
    workspace = ensure_workspace(session, slug, workspace_name.strip() or slug)
    workspace.from_email = normalize_email(email)
    workspace.from_name = workspace.name
    return create_user(session, workspace, email, password, "owner", name=name)
