"""Signup forms and double opt-in in core (issue 17), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.campaigns import audience
from core.forms import consent, mail, signup
from core.forms.service import (
    HONEYPOT,
    STAMP,
    FieldSpec,
    FormInput,
    create_form,
    delete_form,
    list_forms,
    update_form,
)
from core.infra import clock
from core.infra.errors import InvalidToken, NotFound, PermissionDenied, ValidationFailed
from core.models import Campaign, Consent, Contact, ContactList, ListMembership, Suppression
from tests.helpers import actor_of, make_contact, make_user, make_workspace, outbox_messages
from tests.sending.builders import make_campaign, make_setup


def _setup(session, double=True, opt_in="single", **form):
    ws = make_workspace(session, name="Acme", from_name="Acme News", from_email="news@acme.io")
    editor = actor_of(make_user(session, ws, role="editor"))
    news = ContactList(workspace_id=ws.id, name="News", visibility="public", opt_in=opt_in)
    session.add(news)
    session.flush()
    f = create_form(
        session,
        editor,
        FormInput(
            name="Footer",
            list_ids=[news.id],
            fields=[FieldSpec("first_name", required=True)],
            double_opt_in=double,
            consent_text="Yes, mail me Acme News.",
            **form,
        ),
    )
    return ws, editor, news, f


def _post(session, form, email, ip="198.51.100.7", **extra):
    data = {
        "email": email,
        "first_name": "Ada",
        STAMP: signup.fill_stamp(form.id, time.time() - 10),
    }
    data.update(extra)
    return signup.submit(session, form.id, data, ip=ip, user_agent="Firefox")


def _requests(session, contact_id):
    return list(
        session.scalars(
            select(Consent).where(Consent.contact_id == contact_id, Consent.action == "request")
        )
    )


def _pending(session):
    return [args[0] for name, args, _ in session.info.get("mailwright_pending_jobs", [])]


def test_form_crud_is_validated_and_needs_an_editor(session):
    ws, editor, news, f = _setup(session)
    viewer = actor_of(make_user(session, ws, role="viewer"))
    with pytest.raises(PermissionDenied):
        create_form(session, viewer, FormInput(name="X", list_ids=[news.id]))
    with pytest.raises(ValidationFailed, match="at least one list"):
        create_form(session, editor, FormInput(name="X", list_ids=[]))
    with pytest.raises(ValidationFailed, match="no such field"):
        create_form(
            session, editor, FormInput(name="X", list_ids=[news.id], fields=[FieldSpec("password")])
        )
    with pytest.raises(ValidationFailed, match="already a form"):
        create_form(session, editor, FormInput(name="Footer", list_ids=[news.id]))
    with pytest.raises(ValidationFailed, match="redirect"):
        create_form(
            session,
            editor,
            FormInput(name="X", list_ids=[news.id], redirect_url="javascript:alert(1)"),
        )
    other_ws = make_workspace(session)
    foreign = ContactList(workspace_id=other_ws.id, name="Theirs")
    session.add(foreign)
    session.flush()
    with pytest.raises(ValidationFailed, match="No such list"):
        create_form(session, editor, FormInput(name="X", list_ids=[foreign.id]))
    staff = ContactList(workspace_id=ws.id, name="Staff")  # private, the default
    session.add(staff)
    session.flush()
    with pytest.raises(ValidationFailed, match="only to public lists; Staff is private"):
        create_form(session, editor, FormInput(name="X", list_ids=[news.id, staff.id]))
    with pytest.raises(ValidationFailed, match="Staff is private"):
        update_form(session, editor, f.id, FormInput(name="Footer", list_ids=[staff.id]))
    update_form(session, editor, f.id, FormInput(name="Footer 2", list_ids=[news.id]))
    assert [x.name for x in list_forms(session, editor)] == ["Footer 2"]
    assert len(f.id) >= 12
    delete_form(session, editor, f.id)
    assert list_forms(session, editor) == []


def test_double_opt_in_from_submission_to_confirmation(session, outbox):
    ws, editor, news, f = _setup(session)
    result = _post(session, f, "  Ada@Example.com ")
    assert result.outcome == "confirmation queued"
    assert result.form.answer == result.form.check_inbox_message
    contact = session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
    assert contact.status == "unconfirmed" and contact.first_name == "Ada"
    assert contact.source == "form"
    # Not in the list yet, and never picked by a campaign.
    assert (
        session.scalar(select(ListMembership).where(ListMembership.contact_id == contact.id))
        is None
    )
    [request] = _requests(session, contact.id)
    assert (request.ip, request.user_agent, request.consent_text) == (
        "198.51.100.7",
        "Firefox",
        "Yes, mail me Acme News.",
    )
    assert request.list_ids == [news.id] and request.source_detail == f.id
    assert _pending(session) == [request.id]

    assert mail.send_confirmation(session, request.id) == "sent"
    [message] = outbox_messages(outbox)
    assert message["To"] == "ada@example.com"
    assert "Acme News" in message["From"] and "Confirm your subscription" in message["Subject"]
    link = signup.confirm_url(request)
    body = message.get_payload()[0].get_payload(decode=True).decode()
    assert link in body
    token = link.rsplit("/", 1)[1]

    # Reading the link (a scanner, the GET page) changes nothing.
    seen = signup.describe_confirmation(session, token)
    assert (seen.done, seen.workspace_name) == (False, "Acme News")
    session.refresh(contact)
    assert contact.status == "unconfirmed"

    done = signup.confirm(session, token, ip="203.0.113.9", user_agent="Safari")
    assert done.done
    session.refresh(contact)
    assert contact.status == "subscribed"
    assert (
        session.scalar(
            select(ListMembership.list_id).where(ListMembership.contact_id == contact.id)
        )
        == news.id
    )
    rows = consent.consent_history(session, editor, contact.id)
    assert [r.action for r in rows] == ["request", "confirm"]
    confirm = rows[1]
    assert confirm.request_id == request.id and confirm.confirm_ip == "203.0.113.9"
    assert confirm.ip == "198.51.100.7" and confirm.consent_text == "Yes, mail me Acme News."
    assert confirm.confirmed_at is not None and confirm.confirm_user_agent == "Safari"
    # Single use: a second POST changes nothing and mails nothing.
    assert signup.confirm(session, token).done
    assert len(consent.consent_history(session, editor, contact.id)) == 2
    assert mail.send_confirmation(session, request.id) == "already confirmed"


def test_forged_and_expired_links_confirm_nobody(session):
    ws, editor, news, f = _setup(session)
    _post(session, f, "late@example.com")
    contact = session.scalar(select(Contact).where(Contact.email == "late@example.com"))
    [request] = _requests(session, contact.id)
    token = signup.confirm_token(request)
    with pytest.raises(InvalidToken):
        signup.confirm(session, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(InvalidToken, match="expired"):
        signup.confirm(session, token, now=clock.now() + timedelta(days=7, minutes=1))
    session.refresh(contact)
    assert contact.status == "unconfirmed"


def test_unconfirmed_contacts_are_never_in_a_campaign(session):
    setup = make_setup(session, contacts=3)
    from core.models import Workspace

    ws = session.get(Workspace, setup.workspace_id)
    unconfirmed = make_contact(session, ws, email="u@example.com", status="unconfirmed")
    session.add(ListMembership(list_id=setup.list_id, contact_id=unconfirmed.id))
    session.flush()
    cid = make_campaign(session, setup, name="Second")
    counts = audience.count_recipients(session, setup.actor, {"list_ids": [setup.list_id]})
    assert counts == {"chosen": 4, "recipients": 3, "inactive": 0}
    campaign = session.get(Campaign, cid)
    campaign.status = "scheduled"
    session.flush()
    assert audience.snapshot(session, campaign) == 3


def test_answers_are_neutral_for_suppressed_known_and_bot_submissions(session, outbox):
    ws, editor, news, f = _setup(session)
    make_contact(session, ws, email="bounced@example.com", status="bounced")
    session.add(Suppression(workspace_id=ws.id, email="complained@example.com", reason="complaint"))
    known = make_contact(session, ws, email="known@example.com", status="subscribed")
    session.add(ListMembership(list_id=news.id, contact_id=known.id))
    session.flush()
    answers = set()
    outcomes = {}
    for email in (
        "bounced@example.com",
        "complained@example.com",
        "known@example.com",
        "new@example.com",
    ):
        r = _post(session, f, email)
        answers.add(r.form.answer)
        outcomes[email] = r.outcome
    bot = _post(session, f, "bot@example.com", **{HONEYPOT: "http://spam.example"})
    fast = signup.submit(
        session,
        f.id,
        {"email": "fast@example.com", "first_name": "Ada", STAMP: signup.fill_stamp(f.id)},
        ip="198.51.100.8",
    )
    stale = signup.submit(session, f.id, {"email": "nostamp@example.com", "first_name": "A"})
    answers |= {bot.form.answer, fast.form.answer, stale.form.answer}
    assert len(answers) == 1
    assert outcomes == {
        "bounced@example.com": "suppressed",
        "complained@example.com": "suppressed",
        "known@example.com": "already subscribed",
        "new@example.com": "confirmation queued",
    }
    assert (bot.outcome, fast.outcome, stale.outcome) == ("honeypot", "too fast", "too fast")
    # Only the new address gets a confirmation; no contact for the bots.
    assert len(_pending(session)) == 1
    emails = set(session.scalars(select(Contact.email).where(Contact.workspace_id == ws.id)))
    assert emails == {"bounced@example.com", "known@example.com", "new@example.com"}


def test_bad_input_is_refused_with_a_reason(session):
    ws, editor, news, f = _setup(session)
    with pytest.raises(signup.UnknownFields, match="is_admin"):
        _post(session, f, "a@example.com", is_admin="1")
    with pytest.raises(ValidationFailed, match="valid email"):
        _post(session, f, "not-an-address")
    with pytest.raises(ValidationFailed, match="First name is required"):
        _post(session, f, "a@example.com", first_name=" ")
    with pytest.raises(NotFound):
        signup.submit(session, "nope", {"email": "a@example.com"})


def test_single_opt_in_subscribes_at_once_but_never_resubscribes_without_confirmation(session):
    ws, editor, news, f = _setup(session, double=False)
    r = _post(session, f, "single@example.com")
    assert r.outcome == "subscribed" and r.form.answer == r.form.success_message
    c = session.scalar(select(Contact).where(Contact.email == "single@example.com"))
    assert c.status == "subscribed"
    assert [x.action for x in consent.consent_history(session, editor, c.id)] == ["subscribe"]
    gone = make_contact(session, ws, email="gone@example.com", status="unsubscribed")
    session.add(Suppression(workspace_id=ws.id, email="gone@example.com", reason="unsubscribe"))
    session.flush()
    assert _post(session, f, "gone@example.com").outcome == "confirmation queued"
    session.refresh(gone)
    assert gone.status == "unsubscribed"
    [request] = _requests(session, gone.id)
    signup.confirm(session, signup.confirm_token(request), ip="203.0.113.1")
    session.refresh(gone)
    assert gone.status == "subscribed"
    assert consent.consent_history(session, editor, gone.id)[-1].action == "resubscribe"
    assert (
        session.scalar(select(Suppression).where(Suppression.email == "gone@example.com")) is None
    )


def test_subscribed_contact_joins_single_lists_and_confirms_double_ones(session):
    ws, editor, news, f = _setup(session, double=False)
    vip = ContactList(workspace_id=ws.id, name="VIP", opt_in="double", visibility="public")
    session.add(vip)
    session.flush()
    update_form(
        session,
        editor,
        f.id,
        FormInput(name="Footer", list_ids=[news.id, vip.id], double_opt_in=False),
    )
    known = make_contact(session, ws, email="known@example.com")
    r = signup.submit(
        session,
        f.id,
        {"email": "known@example.com", STAMP: signup.fill_stamp(f.id, time.time() - 5)},
    )
    assert r.outcome == "confirmation queued"
    assert r.form.double_opt_in  # a double list makes the whole form answer "check your inbox"
    members = set(
        session.scalars(select(ListMembership.list_id).where(ListMembership.contact_id == known.id))
    )
    assert members == {news.id}
    [request] = _requests(session, known.id)
    assert request.list_ids == [vip.id]


def test_the_address_cap_and_the_ip_limit(session, monkeypatch):
    from core.infra.config import settings

    ws, editor, news, f = _setup(session)
    outcomes = [
        _post(session, f, "victim@example.com", ip=f"192.0.2.{i}").outcome for i in range(5)
    ]
    assert outcomes == ["confirmation queued"] * 3 + ["capped"] * 2
    assert len(_pending(session)) == 3
    # A day later the address may get one again.
    later = clock.now() + timedelta(days=1, seconds=1)
    clock.freeze(later)
    assert _post(session, f, "victim@example.com").outcome == "confirmation queued"
    monkeypatch.setattr(settings, "form_posts_per_ip_per_hour", 2)
    _post(session, f, "one@example.com", ip="192.0.2.99")
    _post(session, f, "two@example.com", ip="192.0.2.99")
    with pytest.raises(signup.TooManyRequests):
        _post(session, f, "three@example.com", ip="192.0.2.99")


def test_beat_deletes_unconfirmed_contacts_after_30_days_with_their_attempts(session):
    ws, editor, news, f = _setup(session)
    _post(session, f, "old@example.com")
    _post(session, f, "kept@example.com", ip="192.0.2.1")
    old = session.scalar(select(Contact).where(Contact.email == "old@example.com"))
    old.created_at = clock.now() - timedelta(days=31)
    subscribed = make_contact(session, ws, email="sub@example.com")
    subscribed.created_at = clock.now() - timedelta(days=400)
    session.flush()
    old_id = old.id
    assert consent.sweep_unconfirmed(session) == 1
    session.expire_all()
    assert session.get(Contact, old_id) is None
    assert session.scalar(select(Consent).where(Consent.contact_id == old_id)) is None
    remaining = set(session.scalars(select(Contact.email).where(Contact.workspace_id == ws.id)))
    assert remaining == {"kept@example.com", "sub@example.com"}


def test_welcome_template_after_confirmation(session, outbox):
    from core.models import Template

    ws = make_workspace(session, name="Acme", from_email="news@acme.io")
    editor = actor_of(make_user(session, ws, role="editor"))
    news = ContactList(workspace_id=ws.id, name="News", visibility="public")
    tpl = Template(
        workspace_id=ws.id,
        name="Welcome",
        subject="Welcome {{ first_name }}",
        html="<p>Hello {{ first_name }}</p>",
    )
    session.add_all([news, tpl])
    session.flush()
    f = create_form(
        session,
        editor,
        FormInput(
            name="W",
            list_ids=[news.id],
            fields=[FieldSpec("first_name")],
            welcome_template_id=tpl.id,
        ),
    )
    _post(session, f, "w@example.com")
    c = session.scalar(select(Contact).where(Contact.email == "w@example.com"))
    [request] = _requests(session, c.id)
    session.info.pop("mailwright_pending_jobs", None)
    signup.confirm(session, signup.confirm_token(request))
    [welcome_id] = _pending(session)
    assert mail.send_welcome(session, welcome_id) == "sent"
    [message] = outbox_messages(outbox)
    assert message["Subject"] == "Welcome Ada"
    assert "<http://track.example.com/u/" in message["List-Unsubscribe"]


def test_a_segment_count_says_how_many_are_unconfirmed(session):
    from core.segments import count_matching

    ws, editor, news, f = _setup(session)
    make_contact(session, ws, email="a@example.com", city="Paris")
    make_contact(session, ws, email="b@example.com", city="Paris", status="unconfirmed")
    make_contact(session, ws, email="c@example.com", city="Lyon", status="unconfirmed")
    rules = {
        "match": "all",
        "rules": [{"field": "city", "op": "eq", "value": "Paris"}],
    }
    result = count_matching(session, editor, rules)
    assert (result.count, result.unconfirmed) == (2, 1)
