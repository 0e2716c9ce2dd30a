"""Ask for a password-reset link by email."""

import streamlit as st

from core.accounts.auth import queue_password_reset, reset_request_allowed

st.title("Forgot password")
with st.form("forgot"):
    email = st.text_input("Your email")
    submitted = st.form_submit_button("Send me a reset link")
if submitted:
    # Capped per address (in core) and per client address, silently: the same answer.
    # The worker looks the address up and mails, so known and unknown addresses take the
    # same time here.
    if reset_request_allowed(st.context.ip_address or ""):
        queue_password_reset(email)
    # The same answer whether or not the address has an account.
    st.success(
        "If an account uses that address, a reset link is on its way. It works for one hour."
    )
st.page_link("pages/login.py", label="Back to sign in")
