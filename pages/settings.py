"""Settings: the workspace's sending identity, its users, and your own profile."""

import streamlit as st

from core.accounts import auth, members
from core.accounts.workspaces import (
    SES_README_ANCHOR,
    SES_README_SECTION,
    SendingIdentity,
    adopt_ses_send_rate,
    get_workspace,
    mail_delivery,
    readme_section,
    time_zones,
    update_sending_identity,
)
from core.infra import clock
from core.infra.config import settings
from core.models import ROLES
from ui.actions import act, arm, ask_first
from ui.auth import sign_out_everywhere
from ui.deliverability import guard_settings
from ui.format import when
from ui.state import actor, db, read_db, shows_errors
from ui.sunset_settings import sunset_settings
from ui.text import md

me = actor()
st.title("Settings")
# A key keeps the open tab across the reruns of an action (they used to jump back to the
# first tab).
identity_tab, guard_tab, sunset_tab, users_tab, profile_tab = st.tabs(
    ["Sending identity", "Deliverability guard", "Inactive contacts", "Users", "Your profile"],
    key="settings_tabs",
    on_change="rerun",
)

with guard_tab:
    guard_settings(me)

with identity_tab:
    delivery = mail_delivery()
    st.info(
        md(delivery.summary),
        icon=":material/home:" if not delivery.leaves_machine else ":material/outgoing_mail:",
    )
    with st.expander(f"How to send through Amazon SES (README, section “{SES_README_SECTION}”)"):
        st.caption(f"README.md#{SES_README_ANCHOR}")
        # The README is the project's own text, not user input.
        st.markdown(readme_section() or "The README is not installed here.")
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
            timezone=ws.timezone,
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
        zones = time_zones()
        zone = st.selectbox(
            "Time zone",
            zones,
            index=zones.index(current.timezone) if current.timezone in zones else 0,
            help="Automations: the day a date trigger fires, and the time of day a wait "
            "'until 09:00' means for contacts without their own time zone.",
        )
        saved = st.form_submit_button("Save", disabled=not me.can("admin"))
    if saved:
        with shows_errors(), db() as session:
            update_sending_identity(
                session,
                me,
                SendingIdentity(
                    name, from_name, from_email, reply_to, postal, rate, config_set, tracking, zone
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
            (u.id, u.email, u.name, u.role, auth.is_locked(u))
            for u in members.list_users(session, me)
        ]
        pending = members.pending_invitations(session, me) if me.can("admin") else []
    st.dataframe(
        [{"Email": e, "Name": n, "Role": r, "Locked": locked} for _, e, n, r, locked in users],
        hide_index=True,
        use_container_width=True,
    )
    if not me.can("admin"):
        st.caption("Only owners and admins invite people and change roles.")
    else:
        st.subheader("Pending invitations")
        if not pending:
            st.caption("No invitation is waiting to be accepted.")
        for inv in pending:
            with st.container(border=True, key=f"invitation_{inv.id}"):
                info, resend, revoke = st.columns([6, 1, 1], vertical_alignment="center")
                when = (
                    f"expired {inv.expires_at:%Y-%m-%d}"
                    if inv.expired
                    else f"link valid until {when(inv.expires_at)}"
                )
                by = f", invited by {inv.invited_by}" if inv.invited_by else ""
                info.markdown(f"**{md(inv.email)}** as {inv.role}{md(by)} · {when}")
                if resend.button(
                    "Resend",
                    key=f"resend_{inv.id}",
                    help="Mail a new link, valid for 7 days; the old link stops working.",
                ):
                    act(
                        lambda s, i=inv.id: members.resend_invitation(s, me, i),
                        f"Sent a new invitation link to {inv.email}; the old link no longer works.",
                    )
                if revoke.button("Revoke", key=f"revoke_{inv.id}"):
                    arm(f"confirm_revoke_{inv.id}")
                if ask_first(
                    f"confirm_revoke_{inv.id}",
                    f"Revoke the invitation to {inv.email}? Its link stops working at once.",
                    "Yes, revoke it",
                ):
                    act(
                        lambda s, i=inv.id: members.revoke_invitation(s, me, i),
                        f"Revoked the invitation to {inv.email}.",
                    )

        with st.form("invite", clear_on_submit=True):
            st.subheader("Invite someone")
            email = st.text_input("Email")
            role = st.selectbox("Role", ROLES[1:], index=1)
            invited = st.form_submit_button("Send invitation")
        if invited:
            act(
                lambda s: members.invite_user(s, me, email, role),
                f"Invitation sent to {email.strip()}.",
            )
        # Everyone else first, then yourself: an owner may hand over and step down (core
        # refuses to leave the workspace without an owner, and says so).
        others = {uid: (e, r) for uid, e, _, r, _ in users if uid != me.user_id}
        others |= {uid: (e, r) for uid, e, _, r, _ in users if uid == me.user_id}
        if others:
            st.subheader("Change a role or remove a user")
            who = st.selectbox(
                "User",
                list(others),
                format_func=lambda uid: (
                    f"{others[uid][0]} ({others[uid][1]})" + (" · you" if uid == me.user_id else "")
                ),
            )
            who_email, who_role = others[who]
            new_role = st.selectbox("New role", ROLES, index=ROLES.index(who_role))
            c1, c2, _ = st.columns([1, 1, 4])
            if c1.button("Change role", disabled=new_role == who_role):
                act(
                    lambda s: members.change_role(s, me, who, new_role),
                    f"{who_email} is now {new_role}.",
                )
            yourself = who == me.user_id
            if c2.button(
                "Remove user",
                disabled=yourself,
                help="You cannot remove yourself: another owner or admin can."
                if yourself
                else None,
            ):
                arm(f"confirm_remove_{who}")
            if ask_first(
                f"confirm_remove_{who}",
                f"Remove {who_email} from this workspace? They are signed out at their next "
                "click and cannot sign in again unless invited anew.",
                "Yes, remove",
            ):
                act(lambda s: members.remove_user(s, me, who), f"Removed {who_email}.")

with profile_tab:
    with read_db() as session:
        my_name = members.current_user(session, me).name
    with st.form("profile"):
        new_name = st.text_input("Your name", my_name)
        if st.form_submit_button("Save name"):
            act(lambda s: members.update_profile(s, me, new_name), "Saved your name.")
    # The passwords never stay in the fields: cleared by the browser on submit, and their
    # state dropped after a change.
    with st.form("password", clear_on_submit=True):
        current_pw = st.text_input("Current password", type="password", key="pw_current")
        new_pw = st.text_input(
            "New password", type="password", help=auth.PASSWORD_RULE, key="pw_new"
        )
        change = st.form_submit_button("Change password")
    if change:
        changed = act(
            lambda s: auth.change_password(s, me, current_pw, new_pw),
            "Password changed; your other sessions are signed out.",
            rerun=False,
        )
        if changed is not None:
            st.session_state["mw_signed_in_at"] = clock.now().timestamp()
            for key in ("pw_current", "pw_new"):
                st.session_state.pop(key, None)
            st.rerun()
    st.divider()
    st.caption(
        "Signed in on another computer, or lost one? End every session of yours, this one too."
    )
    if st.button("Sign out everywhere", key="sign_out_everywhere"):
        sign_out_everywhere()
        st.rerun()

with sunset_tab:
    sunset_settings()
