"""Register: accept an invitation, or create the first (or, with ALLOW_SIGNUP, a new) workspace."""

import streamlit as st

from core.accounts import auth, members
from core.infra.errors import MailwrightError
from ui.state import db
from ui.text import md

st.title("Register")
invite = st.query_params.get("invite", "")

if invite:
    try:
        with db() as session:
            email, role, workspace_name = members.describe_invitation(session, invite)
    except MailwrightError as exc:
        st.error(str(exc))
        st.stop()
    st.write(f"Join **{md(workspace_name)}** as **{role}** with **{md(email)}**.")
    with st.form("accept"):
        name = st.text_input("Your name")
        password = st.text_input("Password", type="password", help=auth.PASSWORD_RULE)
        submitted = st.form_submit_button("Create my account")
    if submitted:
        try:
            with db() as session:
                members.accept_invitation(session, invite, name, password)
        except MailwrightError as exc:
            st.error(str(exc))
        else:
            st.query_params.clear()
            st.success("Your account is ready.")
            st.page_link("pages/login.py", label="Sign in")
    st.stop()

with db() as session:
    open_ = members.registration_open(session)
if not open_:
    st.info("Sign-up is closed on this installation. Ask an admin of your workspace to invite you.")
    st.page_link("pages/login.py", label="Back to sign in")
    st.stop()

st.write("Create a workspace; you will be its owner.")
with st.form("register"):
    workspace_name = st.text_input("Company or team name")
    slug = st.text_input("Workspace short name", help="lower-case letters, digits and dashes")
    name = st.text_input("Your name")
    email = st.text_input("Your email")
    password = st.text_input("Password", type="password", help=auth.PASSWORD_RULE)
    submitted = st.form_submit_button("Create workspace")
if submitted:
    try:
        with db() as session:
            members.register_workspace(session, workspace_name, slug, email, name, password)
    except MailwrightError as exc:
        st.error(str(exc))
    else:
        st.success("Your workspace is ready.")
        st.page_link("pages/login.py", label="Sign in")
