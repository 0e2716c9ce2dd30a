"""The database session and the signed-in actor, as pages use them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlsplit

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker
from streamlit import config
from streamlit.navigation.page import StreamlitPage

from core.config import settings
from core.db import get_sessionmaker
from core.errors import MailwrightError
from core.permissions import Actor


@st.cache_resource
def _maker(url: str) -> sessionmaker[Session]:
    return get_sessionmaker(url)


@contextmanager
def db() -> Iterator[Session]:
    """One transaction for one piece of page work; the page owns it."""
    with _maker(settings.database_url).begin() as session:
        yield session


def actor() -> Actor:
    """The signed-in user; app.py only runs a private page after sign-in."""
    current = st.session_state.get("mw_actor")
    if current is None:
        st.stop()
    return current


@contextmanager
def shows_errors() -> Iterator[None]:
    """Show a domain error to the user instead of a traceback."""
    try:
        yield
    except MailwrightError as exc:
        st.error(str(exc))


def remember_address() -> None:
    """Note the browser's address on a session's first run (see `addressed_page`)."""
    if "mw_address" not in st.session_state:
        st.session_state["mw_address"] = st.context.url or ""


def land_on_address(pages: Sequence[StreamlitPage], current: StreamlitPage) -> None:
    """Open the page that the session's first address named, once signed in.

    A link to /segments, or a reload of it, should open Segments. Under load, Streamlit
    sometimes starts a new session without the page (its first rerun request carries
    none), falls back to the default page and moves the address to "/": the person landed
    on the dashboard. The address of the session's first run, noted by `remember_address`
    before anything else, still names the page: switch to it until it is reached (a
    switch can be overtaken by the browser's own rerun), a few times at most. After that,
    navigation is the person's own."""
    if st.session_state.get("mw_landed"):
        return
    address = urlsplit(st.session_state.get("mw_address") or "")
    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    path = address.path.strip("/").removeprefix(base).strip("/")
    page = next((page for page in pages if path and page.url_path == path), None)
    tries = st.session_state.get("mw_landing_tries", 0)
    if page is None or page.url_path == current.url_path or tries >= 3:
        st.session_state["mw_landed"] = True
        return
    st.session_state["mw_landing_tries"] = tries + 1
    st.switch_page(page, query_params=dict(parse_qsl(address.query)))
