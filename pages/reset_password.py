"""Set a new password with the token from the reset mail."""

import streamlit as st

from core.accounts.auth import PASSWORD_RULE, check_reset_token, reset_password
from core.infra.errors import InvalidToken, WeakPassword
from ui.state import db
from ui.text import md

st.title("Choose a new password")
token = st.query_params.get("token", "")
try:
    with db() as session:
        email = check_reset_token(session, token)
except InvalidToken as exc:
    st.error(str(exc))
    st.page_link("pages/forgot_password.py", label="Ask for a new link")
    st.stop()

st.write(f"For **{md(email)}**. The password needs {PASSWORD_RULE}.")
with st.form("reset"):
    first = st.text_input("New password", type="password")
    second = st.text_input("New password again", type="password")
    submitted = st.form_submit_button("Set password")
if submitted:
    if first != second:
        st.error("The two passwords differ.")
    else:
        try:
            with db() as session:
                reset_password(session, token, first)
        except (InvalidToken, WeakPassword) as exc:
            st.error(str(exc))
        else:
            st.query_params.clear()
            st.success("Your password is set. Every other session of yours has been signed out.")
            st.page_link("pages/login.py", label="Sign in")
