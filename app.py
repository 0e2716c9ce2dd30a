"""Mailwright's Streamlit entry: sign-in gate and navigation over pages/."""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui import cookies
from ui.actions import show_flash
from ui.auth import authenticate, sign_in_screen, sign_out
from ui.deliverability import guard_banner
from ui.text import md

# Navigation is st.navigation only: never run a pages/ file directly (Streamlit's v1
# multipage mode), which would skip the sign-in gate below.
PagesManager.uses_pages_directory = False

# The private pages: (file, title, icon, URL path). The first is the default page, at /.
PRIVATE = [
    ("pages/dashboard.py", "Dashboard", ":material/dashboard:", "dashboard"),
    ("pages/contacts.py", "Contacts", ":material/group:", "contacts"),
    ("pages/segments.py", "Segments", ":material/filter_alt:", "segments"),
    ("pages/templates.py", "Templates", ":material/edit_note:", "templates"),
    ("pages/campaigns.py", "Campaigns", ":material/send:", "campaigns"),
    ("pages/automations.py", "Automations", ":material/automation:", "automations"),
    ("pages/reports.py", "Reports", ":material/monitoring:", "reports"),
    ("pages/data.py", "Data", ":material/database:", "data"),
    ("pages/settings.py", "Settings", ":material/settings:", "settings"),
]


def private_pages(signed_in: bool) -> list[st.Page]:
    """The private pages, or, signed out, the sign-in screen at each of their addresses.

    Streamlit names a page by a hash of its URL path, so a link to /reports?campaign=7
    opened while signed out runs the sign-in screen registered at "reports", keeps its
    address and query, and the rerun after signing in runs Reports itself. The page
    never has to be found again after the fact."""
    pages = []
    for index, (path, title, icon, url_path) in enumerate(PRIVATE):
        default = index == 0
        if default:  # served at /, but it reserves its own path too: one nobody links to
            url_path = "home"
        if signed_in:
            page = st.Page(path, title=title, icon=icon, url_path=url_path, default=default)
        elif default:
            page = st.Page("pages/login.py", title="Sign in", url_path=url_path, default=True)
        else:
            page = st.Page(sign_in_screen, title="Sign in", url_path=url_path)
        pages.append(page)
    # The default page is served at /; a link to /dashboard (its name everywhere else)
    # would answer "Page not found" over the sign-in form, so the page is registered once
    # more there, out of the menu.
    path, title, icon, url_path = PRIVATE[0]
    if signed_in:
        pages.append(st.Page(path, title=title, icon=icon, url_path=url_path, visibility="hidden"))
    else:
        pages.append(st.Page(sign_in_screen, title="Sign in", url_path=url_path))
    return pages


st.set_page_config(
    page_title="Mailwright", page_icon="ui/assets/mailwright-icon.png", layout="wide"
)

actor = authenticate()

if actor is None:
    navigation = st.navigation(
        [
            *private_pages(signed_in=False),
            st.Page("pages/forgot_password.py", title="Forgot password", url_path="forgot"),
            st.Page("pages/reset_password.py", title="Reset password", url_path="reset"),
            st.Page("pages/register.py", title="Register", url_path="register"),
        ],
        position="hidden",
    )
else:
    navigation = st.navigation(private_pages(signed_in=True))
    with st.sidebar:
        st.caption(f"Signed in as **{md(actor.email)}** ({actor.role})")
        if st.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()

cookies.flush()
show_flash()  # what the last change left to say (ui.actions)
if actor is not None:
    guard_banner(actor)  # a campaign the deliverability guard paused, until someone looks
navigation.run()
