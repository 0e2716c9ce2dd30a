"""Sign-in through streamlit-authenticator, fed from and written back to the user rows."""

from __future__ import annotations

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities.exceptions import LoginError

from core.accounts import auth
from core.infra import clock
from core.infra.config import settings
from core.infra.permissions import Actor
from ui import cookies
from ui.state import db, read_db

cookies.install()

COOKIE_NAME = "mailwright_session"
ENDED = "Your session has ended. Please sign in again."
GENERIC_FAILURE = (
    "Wrong email or password. After five failed attempts an account is locked for 15 minutes."
)


def _build_authenticator() -> stauth.Authenticate:
    with read_db() as session:
        entries = auth.login_entries(session)
    credentials = {
        "usernames": {
            email: {
                "email": entry.email,
                "name": entry.name,
                "password": entry.password_hash,
                "failed_login_attempts": entry.failed_logins,
                "logged_in": False,
                "roles": [entry.role],
            }
            for email, entry in entries.items()
        }
    }
    authenticator = stauth.Authenticate(
        credentials,
        COOKIE_NAME,
        settings.secret_key,
        settings.session_cookie_days,
        auto_hash=False,
        login_sleep_time=0.1,
    )
    st.session_state["mw_credentials"] = credentials
    # The form's password check goes through core, which counts the attempt before it
    # checks (parallel guesses cannot outrun the lockout).
    model = authenticator.authentication_controller.authentication_model
    known = credentials["usernames"]

    def check_credentials(username: str, password: str) -> bool:
        # The library looks the typed name up as it is after a success: only exact keys
        # (an unknown one still costs a hash check, so both answers take as long).
        if username not in known:
            auth.check_login("", password)
            return False
        return auth.check_login(username, password)

    model.check_credentials = check_credentials
    return authenticator


def authenticate() -> Actor | None:
    """Run once per script run from app.py: the signed-in actor, or None.

    Every run checks the session against the database: a password change, "Sign out
    everywhere", this session's own sign-out (from any copy of its cookie), a removed
    user or a changed role take effect on the next click."""
    authenticator = _build_authenticator()
    st.session_state["mw_authenticator"] = authenticator
    try:
        authenticator.login(location="unrendered")  # restores a session from the cookie
    except LoginError:
        # The cookie names a user who is no longer here (removed).
        _forget_cookie(authenticator, ENDED)
        return None
    if not st.session_state.get("authentication_status"):
        st.session_state.pop("mw_actor", None)
        return None
    email = st.session_state["username"]
    signed_in_at = st.session_state.get("mw_signed_in_at")
    if signed_in_at is None:  # restored from the cookie
        token = authenticator.cookie_controller.cookie_model.token or {}
        exp = token.get("exp_date") if isinstance(token, dict) else None
        signed_in_at = (exp - settings.session_cookie_days * 86400) if exp else 0.0
        st.session_state["mw_signed_in_at"] = signed_in_at
        st.session_state["mw_token_exp"] = exp
    with read_db() as session:
        user = auth.get_user_by_email(session, email)
        current = (
            user is not None
            and auth.session_is_current(user, signed_in_at)
            and not auth.session_is_revoked(session, user.id, st.session_state.get("mw_token_exp"))
        )
        actor = auth.actor_for(user) if current else None
    if actor is None:
        sign_out(reason=ENDED, revoke=False)
        return None
    st.session_state["mw_actor"] = actor
    return actor


def login_form() -> None:
    """The sign-in form; records failures and successes in the database."""
    authenticator: stauth.Authenticate = st.session_state["mw_authenticator"]
    notice = st.session_state.pop("mw_notice", None)
    if notice:
        st.info(notice)
    authenticator.login(
        location="main",
        fields={
            "Form name": "Sign in",
            "Username": "Email",
            "Password": "Password",
            "Login": "Sign in",
        },
    )
    status = st.session_state.get("authentication_status")
    if status:
        with db() as session:
            auth.record_login_success(session, st.session_state["username"])
        st.session_state["mw_signed_in_at"] = clock.now().timestamp()
        # The token's expiry instant, fixed by the library at sign-in, names this session.
        st.session_state["mw_token_exp"] = authenticator.cookie_controller.cookie_model.exp_date
        # Same page, now signed in: app.py's private pages share the sign-in pages' URLs.
        st.rerun()
    elif status is False:
        # The attempt was counted by auth.check_login, before the password was checked.
        st.error(GENERIC_FAILURE)


def sign_in_screen() -> None:
    """What a signed-out person sees at `/` and at the address of every private page."""
    st.title("Mailwright")
    login_form()
    left, right = st.columns(2)
    left.page_link("pages/forgot_password.py", label="Forgot password?")
    right.page_link("pages/register.py", label="Register or accept an invitation")


def sign_out(reason: str | None = None, revoke: bool = True) -> None:
    """End this session: on the server (its cookie stops working anywhere) and here."""
    authenticator: stauth.Authenticate = st.session_state["mw_authenticator"]
    actor = st.session_state.get("mw_actor")
    if revoke and actor is not None:
        with db() as session:
            auth.end_session(session, actor, st.session_state.get("mw_token_exp"))
    if st.session_state.get("authentication_status"):
        authenticator.logout(location="unrendered")
    else:
        authenticator.cookie_controller.delete_cookie()
    for key in ("mw_actor", "mw_signed_in_at", "mw_token_exp"):
        st.session_state.pop(key, None)
    if reason:
        st.session_state["mw_notice"] = reason


def sign_out_everywhere() -> None:
    """End every session of the signed-in user, this one included."""
    with db() as session:
        auth.end_all_sessions(session, st.session_state["mw_actor"])
    sign_out(reason="You have been signed out everywhere.")


def _forget_cookie(authenticator: stauth.Authenticate, reason: str) -> None:
    st.session_state["logout"] = True  # the library ignores this session's cookie from now on
    authenticator.cookie_controller.delete_cookie()
    for key in ("mw_actor", "mw_signed_in_at", "mw_token_exp", "authentication_status"):
        st.session_state.pop(key, None)
    st.session_state["mw_notice"] = reason
