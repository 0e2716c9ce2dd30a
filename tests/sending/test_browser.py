"""One campaign created and sent through the UI in Chromium; the mail lands in the outbox."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import ContactList, ListMembership, Template, Workspace
from tests.browser.conftest import backend, live_stack, page, settle, sign_in  # noqa: F401
from tests.helpers import outbox_messages
from tests.processes import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_create_and_send_a_campaign_in_the_browser(live_stack, page):  # noqa: F811
    with session_scope() as s:
        ws = s.scalars(select(Workspace)).one()
        ws.from_email, ws.from_name = "news@acme.io", "Acme"
        s.add(Template(workspace_id=ws.id, name="Hello", subject="Hello {{ first_name }}",
                       html="<p>Hi {{ first_name }}</p>"))  # fmt: skip
        lst = ContactList(workspace_id=ws.id, name="Friends")
        s.add(lst)
        s.flush()
        from tests.helpers import make_contact

        for i in range(3):
            c = make_contact(s, ws, email=f"friend{i}@example.com", first_name=f"F{i}")
            s.add(ListMembership(list_id=lst.id, contact_id=c.id))
    sign_in(page, live_stack)
    page.goto(f"{live_stack.url}/campaigns")
    page.get_by_label("New campaign name").fill("Browser launch")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_label("Subject").wait_for()
    settle(page)
    page.get_by_role("button", name="Save, next: recipients").click()
    page.get_by_text("Who receives it").wait_for()
    page.get_by_text("All subscribed contacts").click()
    page.get_by_text("3 chosen").wait_for()  # the count for "all" has been computed
    settle(page)
    page.get_by_role("button", name="Save, next: template").click()
    settle(page)
    page.get_by_role("button", name="Save, next: review").click()
    settle(page)
    page.get_by_role("button", name="Send now").click()
    # It asks first, saying what will happen.
    page.get_by_text(re.compile(r"Send “.+” to 3 recipients now\?")).wait_for()
    assert not outbox_messages(live_stack.outbox)
    page.get_by_role("button", name="Yes, send now").click()
    page.get_by_text("is on its way").wait_for()

    def delivered() -> bool:
        return len(outbox_messages(live_stack.outbox)) == 3

    wait_until(delivered, 90, "three messages in the outbox")
    assert sorted(m["To"] for m in outbox_messages(live_stack.outbox)) == [
        f"friend{i}@example.com" for i in range(3)
    ]
