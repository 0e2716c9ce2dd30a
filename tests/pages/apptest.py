"""Driving app.py with AppTest: sign in, find widgets by label."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from tests.helpers import PASSWORD

_original_init = PagesManager.__init__


def _navigation_only(self, *args, **kwargs) -> None:
    # AppTest resets Streamlit's "uses a pages/ directory" flag before every run, so a
    # rerun would execute pages/x.py directly (the v1 multipage mode) and skip app.py's
    # sign-in gate. The app uses st.navigation only; say so.
    _original_init(self, *args, **kwargs)
    PagesManager.uses_pages_directory = False


PagesManager.__init__ = _navigation_only

APP = Path(__file__).resolve().parents[2] / "app.py"


def new_app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=60)


def by_label(elements, label: str):
    for element in elements:
        if element.label == label:
            return element
    raise AssertionError(f"no widget labelled {label!r}; have {[e.label for e in elements]}")


def sign_in(at: AppTest, email: str, password: str = PASSWORD) -> AppTest:
    at.run()
    by_label(at.text_input, "Email").input(email)
    by_label(at.text_input, "Password").input(password)
    by_label(at.button, "Sign in").click()
    return at.run()


def texts(at: AppTest) -> str:
    """Everything the page shows as text, for loose assertions."""
    parts = [e.value for e in at.markdown] + [e.value for e in at.title]
    parts += (
        [e.value for e in at.error]
        + [e.value for e in at.warning]
        + [e.value for e in at.info]
        + [e.value for e in at.success]
    )
    parts += [str(e.value) for e in at.caption]
    # As a reader sees it: Markdown's backslash escapes (ui.text.md) removed.
    return re.sub(r"\\(.)", r"\1", "\n".join(str(p) for p in parts))
