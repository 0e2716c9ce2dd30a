"""User text in Markdown never becomes a link to somewhere else, in a real browser.

Backslash escapes do not stop GitHub-flavoured autolinks: Streamlit's Markdown links a bare
`https://…` or `www.…` after parsing. `ui.text.md` must leave them as plain text."""

from __future__ import annotations

import pytest

from tests.processes import BIN, ROOT, Proc, free_port, http_ok, wait_until

pytestmark = [pytest.mark.browser]

HOSTILE = [
    "Win big at https://evil.example/login now",
    "visit WWW.evil.example/offer",
    "ftp and http://evil.example:8080/x?a=1",
]

SCRIPT = """
import streamlit as st
from ui.text import md
for i, text in enumerate({texts!r}):
    st.markdown(f"row {{i}}: " + md(text))
    st.caption(md(text))
st.markdown("done")
"""


def test_escaped_user_text_shows_no_links(tmp_path, chromium):
    script = tmp_path / "show.py"
    script.write_text(SCRIPT.format(texts=HOSTILE))
    port = free_port()
    proc = Proc(
        [str(BIN / "python"), "-m", "streamlit", "run", str(script), "--server.port", str(port)]
        + ["--server.headless", "true", "--server.fileWatcherType", "none"],
        {"PYTHONPATH": str(ROOT), "PATH": str(BIN)},
        tmp_path / "streamlit.log",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{url}/_stcore/health"), 90, "streamlit")
        page = chromium.new_page()
        try:
            page.goto(url)
            page.get_by_text("done", exact=True).wait_for(timeout=45_000)
            main = page.get_by_test_id("stMain")
            shown = main.inner_text()
            links = main.locator("a[href]").evaluate_all("els => els.map(e => e.href)")
        finally:
            page.context.close()
    finally:
        proc.stop()
    assert links == []
    # The text reads as typed (the word joiners are invisible).
    for text in HOSTILE:
        assert text in shown.replace("\u2060", "")
