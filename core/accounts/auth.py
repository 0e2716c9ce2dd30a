"""Users, passwords, sign-in lockout, sessions and password reset: who is signed in.

The people of a workspace (roles, invitations, registration) are core.accounts.members."""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bcrypt
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.infra import clock, jobs
from core.infra.config import settings
from core.infra.db import referenced, rowcount
from core.infra.errors import (
    InvalidToken,
    NotFound,
    ValidationFailed,
    WeakPassword,
)
from core.infra.permissions import Actor
from core.infra.tokens import hash_token, random_token
from core.mail.compose import send_system_mail
from core.models import (
    ROLES,
    AuditLog,
    PasswordResetToken,
    RevokedSession,
    User,
    Workspace,
)

PASSWORD_RULE = "at least 10 characters, with at least one letter and one digit or symbol"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
log = logging.getLogger(__name__)


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=settings.bcrypt_rounds)).decode()


# A real bcrypt hash of a random secret, at the same cost as real ones: unknown and locked
# accounts are checked against it, so they fail exactly like a wrong password, in the same
# time (a cheaper dummy told a stranger which addresses have accounts). Made on first use:
# at the production cost it took half a second of every process's start (CLI, worker, web).
@functools.cache
def _locked_hash() -> str:
    return hash_password(random_token())


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:
        return False


def check_password_policy(password: str) -> None:
    """Raise WeakPassword unless the password meets the policy (registration and reset)."""
    if password != password.strip():
        # The sign-in form strips what is typed: such a password could never sign in.
        raise WeakPassword("The password cannot begin or end with a space.")
    if len(password) < 10 or len(password) > 128:
        raise WeakPassword(f"The password needs {PASSWORD_RULE}.")
    if not re.search(r"[A-Za-z]", password) or not re.search(r"[^A-Za-z]", password):
        raise WeakPassword(f"The password needs {PASSWORD_RULE}.")


def normalize_email(email: str) -> str:
    """Trim and lower-case; raise ValidationFailed when it is not an address."""
    email = (email or "").strip().lower()
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"{email!r} is not a valid email address: {exc}") from exc
    return email


def actor_for(user: User) -> Actor:
    return Actor(
        workspace_id=user.workspace_id,
        role=user.role,
        user_id=user.id,
        email=user.email,
    )


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == (email or "").strip().lower()))


def ensure_workspace(session: Session, slug: str, name: str | None = None) -> Workspace:
    """The workspace with `slug`, created when it does not exist."""
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise ValidationFailed(
            "A workspace slug is 2-63 lower-case letters, digits and dashes, starting with a "
            "letter or digit."
        )
    workspace = session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        workspace = Workspace(slug=slug, name=name or slug.replace("-", " ").title())
        session.add(workspace)
        session.flush()
    return workspace


def create_user(
    session: Session,
    workspace: Workspace,
    email: str,
    password: str,
    role: str,
    name: str = "",
) -> User:
    """A new user in `workspace`; the password must meet the policy."""
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    email = normalize_email(email)
    check_password_policy(password)
    if get_user_by_email(session, email) is not None:
        raise ValidationFailed(f"A user with the email {email} already exists.")
    user = User(
        workspace_id=workspace.id,
        email=email,
        name=name or email.split("@")[0],
        password_hash=hash_password(password),
        role=role,
    )
    session.add(user)
    session.flush()
    return user


# --- sign-in -------------------------------------------------------------------------


def is_locked(user: User) -> bool:
    until = clock.as_utc(user.locked_until)
    return until is not None and until > clock.now()


@dataclass
class LoginEntry:
    """What the login form needs to know about one user."""

    name: str
    email: str
    password_hash: str
    failed_logins: int
    role: str


def login_entries(session: Session) -> dict[str, LoginEntry]:
    """Every user keyed by email; a locked account carries a hash nobody can match."""
    entries = {}
    for user in session.scalars(select(User)):
        entries[user.email] = LoginEntry(
            name=user.name or user.email,
            email=user.email,
            password_hash=_locked_hash() if is_locked(user) else user.password_hash,
            failed_logins=user.failed_logins,
            role=user.role,
        )
    return entries


def record_login_failure(session: Session, email: str) -> None:
    """Count a failed attempt; the fifth in a row locks the account for 15 minutes."""
    user = get_user_by_email(session, email)
    if user is None or is_locked(user):
        return
    if user.locked_until is not None:
        # The previous lock has run out: start counting afresh.
        user.locked_until = None
        user.failed_logins = 0
    user.failed_logins += 1
    if user.failed_logins >= settings.login_lockout_attempts:
        _lock(session, user)


def check_login(email: str, password: str) -> bool:
    """The sign-in form's password check, with the lockout counted *before* the check.

    Runs its own transactions: the attempt is claimed (failed_logins + 1, committed) before
    bcrypt runs, so parallel attempts see each other and at most LOGIN_LOCKOUT_ATTEMPTS
    passwords are ever checked before the lock. A success is recorded by the caller
    (record_login_success resets the count); a failure keeps the claimed count and locks
    the account at the last allowed attempt."""
    from core.infra.db import session_scope

    email = (email or "").strip().lower()
    with session_scope() as session:
        # FOR UPDATE: parallel attempts queue here on PostgreSQL (SQLite's BEGIN IMMEDIATE
        # already does), so none reads a count another is about to raise.
        user = session.scalar(select(User).where(User.email == email).with_for_update())
        if user is None or is_locked(user):
            verify_password(password, _locked_hash())  # the same work as a real check
            return False
        if user.locked_until is not None:  # an expired lock: count afresh
            user.locked_until = None
            user.failed_logins = 0
        user.failed_logins += 1
        attempt, password_hash = user.failed_logins, user.password_hash
        if attempt > settings.login_lockout_attempts:
            _lock(session, user)
            return False
    if verify_password(password, password_hash):
        return True
    if attempt >= settings.login_lockout_attempts:
        with session_scope() as session:
            user = get_user_by_email(session, email)
            if user is not None and not is_locked(user):
                _lock(session, user)
    return False


def _lock(session: Session, user: User) -> None:
    user.locked_until = clock.now() + timedelta(minutes=settings.login_lockout_minutes)
    session.add(
        AuditLog(
            workspace_id=user.workspace_id,
            user_id=user.id,
            action="account_locked",
            target=user.email,
        )
    )


def record_login_success(session: Session, email: str) -> User:
    user = get_user_by_email(session, email)
    if user is None:
        raise NotFound("No such user.")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = clock.now()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Check a password with the lockout rules; the CLI and tests use this path."""
    user = get_user_by_email(session, email)
    if user is None or is_locked(user) or not verify_password(password, user.password_hash):
        if user is not None:
            record_login_failure(session, email)
        return None
    return record_login_success(session, email)


def session_is_current(user: User, signed_in_at_ts: float) -> bool:
    """False when the password was reset or changed, or every session was signed out,
    after this session signed in."""
    cutoff = clock.as_utc(user.sessions_valid_after)
    return cutoff is None or signed_in_at_ts >= cutoff.timestamp()


def _session_key(token_exp: float) -> int:
    return round(token_exp * 1_000_000)


def session_is_revoked(session: Session, user_id: int, token_exp: float | None) -> bool:
    """True once the session whose cookie expires at `token_exp` has signed out."""
    if token_exp is None:
        return False
    key = _session_key(token_exp)
    return session.get(RevokedSession, (user_id, key)) is not None


def end_session(session: Session, actor: Actor, token_exp: float | None) -> None:
    """Sign-out: this session's cookie stops working now, on every device that holds it."""
    if token_exp is not None:
        if actor.user_id is None:
            raise ValidationFailed("Only a signed-in user has a session to end.")
        if not session_is_revoked(session, actor.user_id, token_exp):
            session.add(
                RevokedSession(
                    user_id=actor.user_id,
                    token_exp=_session_key(token_exp),
                    expires_at=datetime.fromtimestamp(token_exp, UTC),
                )
            )
    session.add(
        AuditLog(workspace_id=actor.workspace_id, user_id=actor.user_id, action="signed_out")
    )


def end_all_sessions(session: Session, actor: Actor) -> None:
    """ "Sign out everywhere": every session of this user that exists now ends."""
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound("No such user.")
    user.sessions_valid_after = clock.now()
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id, user_id=actor.user_id, action="signed_out_everywhere"
        )
    )


def sweep_revoked_sessions(session: Session) -> int:
    """Forget signed-out sessions whose cookies have expired anyway."""
    result = session.execute(delete(RevokedSession).where(RevokedSession.expires_at < clock.now()))
    return rowcount(result) or 0


# --- password reset ------------------------------------------------------------------


RESETS_PER_HOUR = 3
RESETS_PER_CLIENT_PER_HOUR = 20


def reset_request_allowed(client: str) -> bool:
    """Whether `client` (an IP address) may ask for another reset link this hour.

    Books a slot on the shared rate limiter (database or Redis), so the cap holds across
    app processes. Call it before opening the transaction that handles the request: on
    SQLite the limiter's own transaction would wait for that one's write lock."""
    if not client:
        return True
    from core.mail.ratelimit import get_limiter

    wait = get_limiter().reserve(f"reset:{client}", 1, RESETS_PER_CLIENT_PER_HOUR / 3600)
    if wait > 3600:
        log.warning("password reset requests from %s refused: over the hourly cap", client)
        return False
    return True


RESET_TASK = "worker.tasks.password_reset"


def queue_password_reset(email: str) -> None:
    """Hand a reset request to the worker (which calls request_password_reset).

    The Forgot password page does only this, for every address: its answer then takes the
    same time whether or not the address has an account (mailing inline told them apart)."""
    jobs.enqueue(None, RESET_TASK, (email or "").strip()[:320])


def request_password_reset(session: Session, email: str) -> None:
    """Mail a single-use reset link if the address belongs to a user; silent otherwise."""
    try:
        email = normalize_email(email)
    except ValidationFailed:
        return
    user = get_user_by_email(session, email)
    if user is None:
        return
    recent = (
        session.scalar(
            select(func.count())
            .select_from(PasswordResetToken)
            .where(
                PasswordResetToken.user_id == user.id,
                PasswordResetToken.created_at > clock.now() - timedelta(hours=1),
            )
        )
        or 0
    )
    if recent >= RESETS_PER_HOUR:
        log.warning("password reset for user %s refused: %s this hour", user.id, recent)
        return  # as silent as for an unknown address: no mail-bombing, no enumeration
    token = random_token()
    session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=hash_token(token),
            expires_at=clock.now() + timedelta(minutes=settings.reset_token_minutes),
        )
    )
    session.flush()
    link = f"{settings.app_base_url.rstrip('/')}/reset?token={token}"
    send_system_mail(
        user.email,
        "Reset your Mailwright password",
        "Someone asked to reset the password of your Mailwright account. If it was you, open "
        f"the link below within {settings.reset_token_minutes} minutes. If it was not, ignore "
        "this mail: your password stays as it is.",
        link=link,
    )


def _valid_reset_token(session: Session, token: str) -> PasswordResetToken:
    row = session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == hash_token(token or ""))
    )
    if row is None or row.used_at is not None:
        raise InvalidToken("This reset link is not valid or was already used.")
    if clock.as_utc(row.expires_at) <= clock.now():
        raise InvalidToken("This reset link has expired. Ask for a new one.")
    return row


def check_reset_token(session: Session, token: str) -> str:
    """The email the token resets, or InvalidToken."""
    return referenced(session, User, _valid_reset_token(session, token).user_id).email


def reset_password(session: Session, token: str, new_password: str) -> User:
    """Set a new password with a reset token, use the token up and end all sessions."""
    row = _valid_reset_token(session, token)
    check_password_policy(new_password)
    user = referenced(session, User, row.user_id)
    now = clock.now()
    row.used_at = now
    user.password_hash = hash_password(new_password)
    user.sessions_valid_after = now
    user.failed_logins = 0
    user.locked_until = None
    # Any other outstanding link for this user dies with this one.
    for other in session.scalars(
        select(PasswordResetToken).where(
            PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None)
        )
    ):
        other.used_at = now
    session.add(AuditLog(workspace_id=user.workspace_id, user_id=user.id, action="password_reset"))
    return user


def change_password(session: Session, actor: Actor, current: str, new_password: str) -> User:
    """A signed-in user changes their own password; other sessions end."""
    user = session.get(User, actor.user_id)
    if user is None or not verify_password(current, user.password_hash):
        raise ValidationFailed("The current password is not right.")
    check_password_policy(new_password)
    user.password_hash = hash_password(new_password)
    user.sessions_valid_after = clock.now()
    return user
