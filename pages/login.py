"""Sign in."""

import streamlit as st

from ui.auth import login_form

st.title("Mailwright")
login_form()
left, right = st.columns(2)
left.page_link("pages/forgot_password.py", label="Forgot password?")
right.page_link("pages/register.py", label="Register or accept an invitation")
