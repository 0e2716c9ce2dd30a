"""The session cookie, written in the browser without a component round trip.

streamlit-authenticator reads its cookie from `st.context.cookies` (the cookies of the
websocket's handshake) and writes it through extra-streamlit-components' CookieManager.
That component answers every mount, and every cookie it sets or deletes, with a
component value, and a component value is a rerun request from the browser. Two
Streamlit behaviours turn those unasked-for reruns into bugs (a deep link landing on the
dashboard, a lost sign-in click):

- A new session's first run is requested by page name (`/settings`), but the browser
  notes the *main script's* hash as the current page when the run starts, and only
  learns the real page from the run's navigation message. A rerun sent in between (the
  component mounting while a slow first run has not reached `st.navigation` yet) names
  the main script and no page, so `st.navigation` falls back to the default page and
  the address moves to `/`.
- With `runner.fastReruns` (the default) a rerun request stops the running script. A
  component value that lands right after the "Sign in" click stops the run that was
  about to check the password, and the click's trigger is gone.

So this module stands in for the CookieManager inside streamlit-authenticator: it keeps
the same `set` / `delete` interface and writes `document.cookie` from an `st.html`
script, which runs in the page and sends nothing back. Reading stays with
`st.context.cookies`, as streamlit-authenticator already does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import streamlit as st
from streamlit_authenticator.models import cookie_model

# Cookie writes not yet known to have reached the browser. The run that signs in or
# out ends in st.rerun(), which can replace its elements before the browser runs them,
# so the next run writes them again (`flush`); writing a cookie twice is harmless.
_PENDING = "mw_cookie_writes"


def _script(name: str, value: str, expires: datetime) -> str:
    stamp = expires.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    # json.dumps quotes both strings for JavaScript (and "<" is escaped, so no value can
    # close the script tag); neither comes from user input.
    name, value = (json.dumps(v).replace("<", "\\u003c") for v in (name, value))
    return (
        "<script>(function(){"
        f"var c={name}+'='+encodeURIComponent({value})"
        f"+'; Path=/; Expires={stamp}; SameSite=Strict';"
        "if(location.protocol==='https:'){c+='; Secure';}"
        "document.cookie=c;})();</script>"
    )


class BrowserCookies:
    """The part of extra-streamlit-components' CookieManager the auth library uses."""

    def __init__(self, key: str = "init") -> None:
        self.cookies: dict[str, Any] = dict(st.context.cookies)

    def get(self, cookie: str) -> Any:
        return self.cookies.get(cookie)

    def set(self, cookie: str, val: str, expires_at: datetime | None = None, **_: Any) -> None:
        expires = expires_at or datetime.now() + timedelta(days=1)
        _write(_script(cookie, str(val), expires))
        self.cookies[cookie] = val

    def delete(self, cookie: str, key: str = "delete") -> None:
        _write(_script(cookie, "", datetime(1970, 1, 1, tzinfo=UTC)))
        self.cookies.pop(cookie, None)


def _write(script: str) -> None:
    st.session_state.setdefault(_PENDING, []).append(script)
    st.html(script, unsafe_allow_javascript=True)


def flush() -> None:
    """Write again, once, the cookies that the previous run wrote."""
    for script in st.session_state.pop(_PENDING, []):
        st.html(script, unsafe_allow_javascript=True)


def install() -> None:
    """Make streamlit-authenticator write its cookie through `BrowserCookies`."""
    cookie_model.stx = SimpleNamespace(CookieManager=BrowserCookies)
