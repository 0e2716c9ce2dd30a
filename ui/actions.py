"""One way for a page to change something: do it in a transaction, then rerun with a message.

    if st.button("Delete"):
        act(lambda s: campaigns.delete_campaign(s, me, cid), f"Deleted “{name}”.")

`act` runs the work in one transaction (`ui.state.db`). On success it stores the message
and reruns, so the screen is drawn again from the new state and app.py shows the message
above the page (`show_flash`). On a domain error it shows the error, escaped, and returns
None: nothing was committed and the page stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from sqlalchemy.orm import Session

from core.infra.errors import MailwrightError
from ui.state import db
from ui.text import md

T = TypeVar("T")
_FLASH = "mw_flash"


def flash(message: str) -> None:
    """Show `message` once, on the next run (after a rerun or a page switch)."""
    st.session_state[_FLASH] = message


def show_flash() -> None:
    """Called by app.py on every run: the message a change left for this run, if any."""
    if message := st.session_state.pop(_FLASH, None):
        st.success(md(message))


def act(
    work: Callable[[Session], T],
    done: str | Callable[[T], str] | None = None,
    *,
    rerun: bool = True,
) -> T | None:
    """`work(session)` in one transaction; then `done` (text, or made from the result) is
    shown after a rerun. A domain error is shown instead and None returned.

    With `rerun=False` the caller goes on drawing (or switches page) itself."""
    try:
        with db() as session:
            result = work(session)
    except MailwrightError as exc:
        st.error(md(exc))
        return None
    if done is not None:
        flash(done(result) if callable(done) else done)
    if rerun:
        st.rerun()
    return result


def ask_first(key: str, question: str, yes: str, no: str = "Not now") -> bool:
    """An inline "are you sure?" for an action that cannot be undone.

    The action's own button calls `arm(key)`; from the next run `ask_first` shows
    `question` with a `yes` and a `no` button, and returns True on the run `yes` is
    clicked (then forgets). `no` forgets without acting. Not a modal dialog: AppTest and
    keyboard users see it like any other part of the page."""
    if not st.session_state.get(key):
        return False
    st.warning(md(question))
    left, right, _ = st.columns([1, 1, 4])
    if left.button(yes, key=f"{key}_yes", type="primary"):
        st.session_state.pop(key, None)
        return True
    if right.button(no, key=f"{key}_no"):
        st.session_state.pop(key, None)
        st.rerun()
    return False


def arm(key: str) -> None:
    """Ask first (see `ask_first`): the question shows on the next run."""
    st.session_state[key] = True
    st.rerun()
