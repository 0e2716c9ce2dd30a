"""Mailwright's Streamlit entry: sign-in gate and navigation over pages/."""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui.auth import authenticate, sign_out
from ui.state import land_on_address, remember_address

# Navigation is st.navigation only: never run a pages/ file directly (Streamlit's v1
# multipage mode), which would skip the sign-in gate below.
PagesManager.uses_pages_directory = False

st.set_page_config(page_title="Mailwright", page_icon=":material/mail:", layout="wide")

remember_address()
actor = authenticate()

if actor is None:
    navigation = st.navigation(
        [
            st.Page("pages/login.py", title="Sign in", default=True),
            st.Page("pages/forgot_password.py", title="Forgot password", url_path="forgot"),
            st.Page("pages/reset_password.py", title="Reset password", url_path="reset"),
            st.Page("pages/register.py", title="Register", url_path="register"),
        ],
        position="hidden",
    )
else:
    pages = [
        st.Page("pages/dashboard.py", title="Dashboard", icon=":material/dashboard:", default=True),
        st.Page("pages/contacts.py", title="Contacts", icon=":material/group:"),
        st.Page("pages/segments.py", title="Segments", icon=":material/filter_alt:"),
        st.Page("pages/templates.py", title="Templates", icon=":material/edit_note:"),
        st.Page("pages/campaigns.py", title="Campaigns", icon=":material/send:"),
        st.Page("pages/reports.py", title="Reports", icon=":material/monitoring:"),
        st.Page("pages/data.py", title="Data", icon=":material/database:"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
    ]
    navigation = st.navigation(pages)
    land_on_address(pages, navigation)
    with st.sidebar:
        st.caption(f"Signed in as **{actor.email}** ({actor.role})")
        if st.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()

navigation.run()
