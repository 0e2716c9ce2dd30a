"""Settings: the workspace's sending identity, its users, and your own profile."""

import streamlit as st

from core.accounts import auth
from core.accounts.workspaces import (
    SendingIdentity,
    adopt_ses_send_rate,
    get_workspace,
    update_sending_identity,
)
from core.infra import clock
from core.infra.config import settings
from core.models import ROLES
from ui.auth import sign_out_everywhere
from ui.state import actor, db, read_db, shows_errors
from ui.text import md

me = actor()
st.title("Settings")
identity_tab, users_tab, profile_tab = st.tabs(["Sending identity", "Users", "Your profile"])

with identity_tab:
    with read_db() as session:
        ws = get_workspace(session, me)
        current = SendingIdentity(
            name=ws.name,
            from_name=ws.from_name,
            from_email=ws.from_email,
            reply_to=ws.reply_to,
            postal_address=ws.postal_address,
            max_send_rate=ws.max_send_rate,
            ses_configuration_set=ws.ses_configuration_set,
            tracking_source=ws.tracking_source,
        )
    if not me.can("admin"):
        st.caption("Only owners and admins change these.")
    with st.form("identity"):
        name = st.text_input("Workspace name", current.name)
        from_name = st.text_input("From name", current.from_name)
        from_email = st.text_input("From address", current.from_email)
        reply_to = st.text_input("Reply-to address", current.reply_to)
        postal = st.text_area("Postal address (shown in every footer)", current.postal_address)
        rate = st.number_input(
            "Max send rate (messages per second)", 0.1, 10000.0, float(current.max_send_rate)
        )
        config_set = st.text_input("SES configuration set", current.ses_configuration_set)
        tracking = st.selectbox(
            "Count opens and clicks from",
            ["own", "ses"],
            index=["own", "ses"].index(current.tracking_source),
            format_func={"own": "Mailwright's pixel and links", "ses": "SES event publishing"}.get,
        )
        saved = st.form_submit_button("Save", disabled=not me.can("admin"))
    if saved:
        with shows_errors(), db() as session:
            update_sending_identity(
                session,
                me,
                SendingIdentity(
                    name, from_name, from_email, reply_to, postal, rate, config_set, tracking
                ),
            )
            st.success("Saved.")
    if settings.email_transport == "ses":
        st.caption("SES limits how fast this account may send; Mailwright can ask it.")
        if st.button("Use SES's max send rate", disabled=not me.can("admin")):
            with shows_errors(), db() as session:
                quota = adopt_ses_send_rate(session, me)
                st.success(
                    f"Max send rate set to {quota.max_send_rate:g} messages a second. SES "
                    f"quota: {quota.sent_last_24_hours:,.0f} of {quota.max_24_hour_send:,.0f} "
                    "sent in the last 24 hours"
                    + ("" if quota.production_access else "; the account is in the SES sandbox")
                    + ("." if quota.sending_enabled else "; sending is paused in SES.")
                )

with users_tab:
    with read_db() as session:
        users = [
            (u.id, u.email, u.name, u.role, auth.is_locked(u)) for u in auth.list_users(session, me)
        ]
    st.dataframe(
        [{"Email": e, "Name": n, "Role": r, "Locked": locked} for _, e, n, r, locked in users],
        hide_index=True,
        use_container_width=True,
    )
    if me.can("admin"):
        with st.form("invite", clear_on_submit=True):
            st.subheader("Invite someone")
            email = st.text_input("Email")
            role = st.selectbox("Role", ROLES[1:], index=1)
            invited = st.form_submit_button("Send invitation")
        if invited:
            with shows_errors(), db() as session:
                auth.invite_user(session, me, email, role)
                st.success(f"Invitation sent to {md(email)}.")
        others = {f"{e} ({r})": uid for uid, e, _, r, _ in users if uid != me.user_id}
        if others:
            st.subheader("Change a role or remove a user")
            who = st.selectbox("User", list(others))
            new_role = st.selectbox("New role", ROLES)
            c1, c2 = st.columns(2)
            if c1.button("Change role"):
                with shows_errors(), db() as session:
                    auth.change_role(session, me, others[who], new_role)
                    st.success("Role changed.")
            if c2.button("Remove user", type="secondary"):
                with shows_errors(), db() as session:
                    auth.remove_user(session, me, others[who])
                    st.success("User removed.")

with profile_tab:
    with st.form("profile"):
        new_name = st.text_input("Your name")
        if st.form_submit_button("Save name"):
            with shows_errors(), db() as session:
                auth.update_profile(session, me, new_name)
                st.success("Saved.")
    with st.form("password"):
        current_pw = st.text_input("Current password", type="password")
        new_pw = st.text_input("New password", type="password", help=auth.PASSWORD_RULE)
        if st.form_submit_button("Change password"):
            with shows_errors(), db() as session:
                auth.change_password(session, me, current_pw, new_pw)
                st.session_state["mw_signed_in_at"] = clock.now().timestamp()
                st.success("Password changed; your other sessions are signed out.")
    st.divider()
    st.caption(
        "Signed in on another computer, or lost one? End every session of yours, this one too."
    )
    if st.button("Sign out everywhere", key="sign_out_everywhere"):
        sign_out_everywhere()
        st.rerun()
