"""The database session and the signed-in actor, as pages use them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from core.infra.config import settings
from core.infra.db import get_sessionmaker, read_scope
from core.infra.errors import MailwrightError
from core.infra.permissions import Actor
from ui.text import md


@st.cache_resource
def _maker(url: str) -> sessionmaker[Session]:
    return get_sessionmaker(url)


@contextmanager
def db() -> Iterator[Session]:
    """One transaction for one piece of page work; the page owns it."""
    with _maker(settings.database_url).begin() as session:
        yield session


@contextmanager
def read_db() -> Iterator[Session]:
    """A transaction that only reads (no write lock on SQLite): for drawing a page."""
    with read_scope(settings.database_url) as session:
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
        st.error(md(exc))
