"""Showing a rendered email safely: a sandboxed iframe (no scripts, no forms, no same
origin) at a chosen width, so the email's own markup cannot touch the app."""

from __future__ import annotations

import html as html_lib

import streamlit as st

WIDTHS = {"Desktop": 640, "Mobile": 375}


def preview_frame(email_html: str, width: int, height: int = 640) -> str:
    """A page holding the email in an iframe with an empty `sandbox` attribute."""
    return (
        '<div style="display:flex;justify-content:center;background:#f1f3f5;padding:8px">'
        f'<iframe sandbox="" referrerpolicy="no-referrer" title="Email preview" '
        f'style="width:{int(width)}px;height:{int(height) - 24}px;border:1px solid #ccc;'
        f'background:#fff" srcdoc="{html_lib.escape(email_html, quote=True)}"></iframe></div>'
    )


def show_email(email_html: str, width: int = 640, height: int = 660) -> None:
    """Show user HTML: the only way pages put an email (or any user HTML) on screen.

    `st.iframe` and `components.html` run their content with scripts and the app's
    origin; here that content is only our wrapper, and the email sits in the inner
    frame whose empty sandbox allows neither (tests/pages/test_user_html.py checks that
    nothing else shows raw HTML)."""
    st.iframe(preview_frame(email_html, width, height), height=height)
