"""One MIME builder (issue 15): the template editor's test send and a campaign sent by the
pipeline give the same headers and the same structure for the same input."""

from __future__ import annotations

import email
import re
from email.message import Message as MimeMessage
from email.policy import default

from sqlalchemy import select

from core.campaigns import service as campaigns
from core.content import templates
from core.content.rendering import Rendered
from core.infra.db import session_scope
from core.mail.compose import MimeBuilder, build_mime
from core.models import Campaign, ListMembership, Message, Template, Workspace
from core.sending.compose import Composer
from tests.helpers import make_contact, message_text, outbox_messages
from tests.sending.builders import make_campaign, make_setup
from tests.sending.test_pipeline import html_part, run_tasks

# Headers only a campaign's mail has: the list it belongs to, and which campaign it is.
CAMPAIGN_ONLY = {"List-Id", "X-Mailwright-Campaign"}


def structure(msg: MimeMessage) -> list[tuple[str, str | None, str | None]]:
    return [
        (part.get_content_type(), part.get_content_charset(), part["Content-Transfer-Encoding"])
        for part in msg.walk()
    ]


def modern(msg: MimeMessage) -> MimeMessage:
    """The same bytes parsed with the default policy, which decodes encoded words."""
    return email.message_from_bytes(msg.as_bytes(), policy=default)


def test_a_test_send_and_a_campaign_mail_are_built_alike(live_db, enqueued, outbox):
    with session_scope() as s:
        setup = make_setup(s, contacts=1)
        workspace = s.get(Workspace, setup.workspace_id)
        workspace.from_name = "Zoë's Shop, Lisbon"  # encoded words and a quoted comma
        workspace.reply_to = "help@acme.io"
        cid = make_campaign(s, setup)
        campaign = s.get(Campaign, cid)
        campaign.from_name = workspace.from_name
        campaign.track_opens = campaign.track_clicks = False
        template = s.get(Template, setup.template_id)
        draft = templates.TemplateDraft(template.name, template.subject, template.html)
        campaigns.send_now(s, setup.actor, cid)
    run_tasks(enqueued)
    [sent] = outbox_messages(outbox)
    with session_scope() as s:
        contact_id = s.scalar(select(Message.contact_id).where(Message.campaign_id == cid))
        templates.send_test(s, setup.actor, draft, sent["To"], contact_id)
    [test] = [m for m in outbox_messages(outbox) if m["Message-ID"] != sent["Message-ID"]]

    assert set(sent.keys()) - set(test.keys()) == CAMPAIGN_ONLY
    assert set(test.keys()) <= set(sent.keys())
    for field in ("From", "Reply-To", "To", "List-Unsubscribe-Post", "MIME-Version"):
        assert test[field] == sent[field], field
    assert modern(sent)["From"].addresses[0].display_name == "Zoë's Shop, Lisbon"
    assert modern(test)["Subject"] == f"[Test] {modern(sent)['Subject']}"
    assert test["List-Unsubscribe"].startswith("<http")
    assert sent["List-Unsubscribe"].startswith("<http")
    assert (
        structure(test)
        == structure(sent)
        == [
            ("multipart/alternative", None, None),
            ("text/plain", "utf-8", "base64"),
            ("text/html", "utf-8", "base64"),
        ]
    )
    # Same body but for the unsubscribe and preference links (a test's name no contact).
    own = {m: m["List-Unsubscribe"].strip("<>") for m in (sent, test)}
    assert "/p/test/" in html_part(test) and "/p/test/" not in html_part(sent)

    def prefs(body: str) -> str:
        return re.sub(r"/p/(test/)?[A-Za-z0-9._-]+", "/p/P", body)

    assert prefs(message_text(test).replace(own[test], "U")) == prefs(
        message_text(sent).replace(own[sent], "U")
    )
    assert prefs(html_part(test).replace(own[test], "U")) == prefs(
        html_part(sent).replace(own[sent], "U")
    )
    # The plain-text part comes from the HTML, links as text mail shows them.
    assert "See the offer: https://example.org/offer?a=1&b=2" in message_text(sent)


def test_a_recipient_no_transport_can_reach_fails_alone(live_db, enqueued, outbox):
    """A non-ASCII local part needs SMTPUTF8: that message fails with the reason, the rest
    of the batch is sent."""
    with session_scope() as s:
        setup = make_setup(s, contacts=2)
        workspace = s.get(Workspace, setup.workspace_id)
        zoe = make_contact(s, workspace, email="zoë@example.com", first_name="Zoë")
        s.add(ListMembership(list_id=setup.list_id, contact_id=zoe.id))
        cid = make_campaign(s, setup)
        campaigns.send_now(s, setup.actor, cid)
    run_tasks(enqueued)
    assert sorted(m["To"] for m in outbox_messages(outbox)) == ["r0@example.com", "r1@example.com"]
    with session_scope() as s:
        rows = {m.email: m for m in s.scalars(select(Message).where(Message.campaign_id == cid))}
        campaign = s.get(Campaign, cid)
        assert campaign.status == "sent"
    assert rows["zoë@example.com"].status == "failed"
    assert "not one ASCII address" in rows["zoë@example.com"].error
    assert {rows[f"r{i}@example.com"].status for i in range(2)} == {"sent"}


def test_headers_are_one_line_each_and_folded_by_the_email_library():
    builder = MimeBuilder(
        sender="news@acme.io",
        sender_name="Acme",
        headers={"List-Id": "A very long list name for everyone who reads it <1.acme.acme.io>"},
    )
    raw = builder.build(
        to="a@example.com",
        subject="Ünïcode " * 20 + "\r\nBcc: x@evil.example",
        text="t",
        html=None,
        headers={"List-Unsubscribe": "<https://t.example/u/" + "x" * 150 + ">"},
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"")  # CRLF only
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    msg = email.message_from_bytes(raw, policy=default)
    assert "Bcc" not in msg and msg["Subject"].startswith("Ünïcode Ünïcode")
    assert msg["List-Id"] == "A very long list name for everyone who reads it <1.acme.acme.io>"
    assert msg["List-Unsubscribe"].endswith("x" * 150 + ">")
    assert msg.get_content_type() == "text/plain" and msg.get_content() == "t"
    # build_mime, the system mails' entry, is the same builder.
    system = email.message_from_bytes(
        build_mime(
            sender="news@acme.io", to="a@example.com", subject="Hi", html="<p>x</p>", text="x"
        ),
        policy=default,
    )
    assert [p.get_content_type() for p in system.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


def test_a_long_non_ascii_subject_is_folded_with_crlf_in_a_campaign_mail(session):
    """The campaign path used to fold such a subject with a bare LF (SMTP servers refuse it)."""
    setup = make_setup(session)
    campaign = session.get(Campaign, make_campaign(session, setup))
    composer = Composer(campaign, session.get(Workspace, setup.workspace_id))
    raw = composer.build(
        message_id=1,
        to="a@example.com",
        rendered=Rendered("Ünïcode " * 20, "<p>x</p>", "x"),
        unsubscribe="https://t.example/u/1",
    )
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF in the message"
    parsed = email.message_from_bytes(raw, policy=default)
    assert parsed["Subject"] == ("Ünïcode " * 20).strip()
