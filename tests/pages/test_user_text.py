"""User text is shown as typed wherever Streamlit renders Markdown (issue 14, low items)."""

from __future__ import annotations

from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Campaign, Workspace
from tests.analytics.dataset import build_known
from tests.apptest_db import seed_user
from tests.pages.apptest import new_app, sign_in
from ui.text import md

HOSTILE = "![t](https://evil.example/t.gif) [Reset your password](https://evil.example) :red[x]"


def test_md_leaves_no_markdown_in_user_text():
    escaped = md(HOSTILE + "\n# heading $x$")
    for raw in ("![", "](", ":red[", "\n", "$x$"):
        assert raw not in escaped
    assert "\\# heading" in escaped


def test_a_hostile_campaign_name_is_plain_text_on_the_dashboard(live_db):
    email = seed_user()
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        known = build_known(session, ws.id)
        session.get(Campaign, known.campaign_id).name = HOSTILE
    at = sign_in(new_app(), email)
    assert not at.exception
    sources = [e.proto.label for e in at.get("page_link")]
    sources += [e.value for e in at.markdown]
    assert any(md(HOSTILE) in s for s in sources), sources
    assert not any("](https://evil.example" in s for s in sources)
