"""The demo workspace: realistic contacts, lists, templates and a sent campaign with events."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.accounts.auth import create_user, ensure_workspace, get_user_by_email
from core.infra import clock
from core.infra.config import settings
from core.infra.db import session_scope
from core.models import (
    Campaign,
    Contact,
    ContactList,
    CustomField,
    Event,
    ListMembership,
    Message,
    Template,
    User,
    Variant,
    Workspace,
)
from core.models.statuses import CampaignStatus, ContactStatus, MessageStatus

DEMO_EMAIL = "owner@demo.example.com"
FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Sophie",
    "Guido",
]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
]
CITIES = [
    ("Berlin", "DE"),
    ("Lisbon", "PT"),
    ("Paris", "FR"),
    ("New York", "US"),
    ("Austin", "US"),
    ("London", "GB"),
    ("Madrid", "ES"),
    ("Toronto", "CA"),
    ("Sydney", "AU"),
    ("Tokyo", "JP"),
]
COMPANIES = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
]
PLANS = ["free", "starter", "pro", "enterprise"]

WELCOME_HTML = """<html><head><style>h1 { color: #1f4e79; } p { font-size: 15px; }</style></head>
<body><h1>Hello {{ first_name | default("there") }}!</h1>
<p>Thanks for trying {{ workspace_name }}. Your plan: <strong>{{ custom_fields.plan | default("free") }}</strong>.</p>
<p><a href="https://example.com/getting-started">Read the getting-started guide</a></p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>"""

NEWSLETTER_HTML = """<html><body><h2>What's new this month</h2>
<p>Hi {{ first_name | default("friend") }}, here is what we shipped:</p>
<ul>{% for item in ["Faster imports", "Segments", "A/B tests"] %}<li>{{ item }}</li>{% endfor %}</ul>
<p><a href="https://example.com/blog/november">Read the full post</a></p></body></html>"""


@dataclass
class SeedResult:
    created: bool
    email: str
    password: str | None


def seed_demo(contacts: int = 500, if_empty: bool = False) -> SeedResult:
    """Create the demo workspace once; the password is returned only when it was made now."""
    with session_scope() as session:
        if if_empty and session.scalar(select(func.count()).select_from(User)):
            return SeedResult(created=False, email=DEMO_EMAIL, password=None)
        existing = session.scalar(select(Workspace).where(Workspace.slug == "demo"))
        if existing is not None and get_user_by_email(session, DEMO_EMAIL) is not None:
            return SeedResult(created=False, email=DEMO_EMAIL, password=None)
        password = settings.demo_password or secrets.token_urlsafe(12) + "7!"
        workspace = ensure_workspace(session, "demo", "Demo Company")
        workspace.from_name = "Demo Company"
        workspace.from_email = "news@demo.example.com"
        workspace.reply_to = "hello@demo.example.com"
        workspace.postal_address = "Demo Company, 1 Example Street, 10115 Berlin, Germany"
        create_user(session, workspace, DEMO_EMAIL, password, "owner", name="Demo Owner")
        _seed_content(session, workspace, contacts)
    return SeedResult(created=True, email=DEMO_EMAIL, password=password)


def _seed_content(session: Session, workspace: Workspace, n_contacts: int) -> None:
    rng = random.Random(42)
    now = clock.now()
    for key, label, type_ in [
        ("plan", "Plan", "text"),
        ("score", "Lead score", "number"),
        ("signup_date", "Signup date", "date"),
        ("vip", "VIP", "boolean"),
    ]:
        session.add(CustomField(workspace_id=workspace.id, key=key, label=label, type=type_))
    lists = [
        ContactList(workspace_id=workspace.id, name=name)
        for name in ("Newsletter", "Customers", "Beta testers")
    ]
    session.add_all(lists)
    session.flush()
    people = []
    for i in range(n_contacts):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, country = rng.choice(CITIES)
        created = now - timedelta(days=rng.randint(0, 120), minutes=rng.randint(0, 1440))
        status = rng.choices(
            ["subscribed", "unsubscribed", "bounced", "complained"], [92, 5, 2, 1]
        )[0]
        people.append(
            Contact(
                workspace_id=workspace.id,
                email=f"{first}.{last}.{i}@example.com".lower(),
                first_name=first,
                last_name=last,
                company=rng.choice(COMPANIES),
                city=city,
                country=country,
                phone=f"+49 30 {rng.randint(1000000, 9999999)}",
                custom_fields={
                    "plan": rng.choice(PLANS),
                    "score": rng.randint(0, 100),
                    "signup_date": (created.date()).isoformat(),
                    "vip": rng.random() < 0.1,
                },
                status=status,
                source="demo",
                created_at=created,
                updated_at=created,
            )
        )
    session.add_all(people)
    session.flush()
    for contact in people:
        for lst in lists:
            if rng.random() < 0.45:
                session.add(ListMembership(list_id=lst.id, contact_id=contact.id))
    welcome = Template(
        workspace_id=workspace.id,
        name="Welcome",
        subject="Welcome, {{ first_name | default('there') }}!",
        html=WELCOME_HTML,
    )
    newsletter = Template(
        workspace_id=workspace.id,
        name="Monthly newsletter",
        subject="What's new at {{ workspace_name }}",
        html=NEWSLETTER_HTML,
    )
    session.add_all([welcome, newsletter])
    session.flush()
    _seed_sent_campaign(session, workspace, welcome, people, rng, now)


def _seed_sent_campaign(
    session: Session,
    workspace: Workspace,
    template: Template,
    people: list[Contact],
    rng: random.Random,
    now,
) -> None:
    started = now - timedelta(days=3)
    campaign = Campaign(
        workspace_id=workspace.id,
        name="Welcome series #1",
        status=CampaignStatus.SENT,
        audience={"all": True, "list_ids": [], "segment_id": None, "contact_ids": []},
        from_name=workspace.from_name,
        from_email=workspace.from_email,
        reply_to=workspace.reply_to,
        started_at=started,
        finished_at=started + timedelta(minutes=12),
    )
    variant = Variant(
        label="A",
        subject=template.subject,
        template_id=template.id,
        html=template.html,
        text=None,
    )
    campaign.variants.append(variant)
    session.add(campaign)
    session.flush()
    link = "https://example.com/getting-started"
    for contact in people:
        if contact.status != ContactStatus.SUBSCRIBED and rng.random() < 0.8:
            continue
        sent_at = started + timedelta(seconds=rng.randint(0, 700))
        msg = Message(
            workspace_id=workspace.id,
            campaign_id=campaign.id,
            contact_id=contact.id,
            variant_id=variant.id,
            email=contact.email,
            status=MessageStatus.SENT,
            attempts=1,
            provider_message_id=f"demo-{contact.id}",
            sent_at=sent_at,
            updated_at=sent_at,
            queued_at=started,
        )
        session.add(msg)
        session.flush()

        def event(type_: str, at, msg=msg, contact=contact, **extra) -> None:
            session.add(
                Event(
                    workspace_id=workspace.id,
                    campaign_id=campaign.id,
                    message_id=msg.id,
                    contact_id=contact.id,
                    type=type_,
                    occurred_at=at,
                    dedupe_key=f"demo:{msg.id}:{type_}:{at.timestamp()}",
                    **extra,
                )
            )

        event("sent", sent_at, source="ses")
        if rng.random() < 0.03:
            event(
                "bounce",
                sent_at + timedelta(seconds=30),
                source="ses",
                bounce_type=rng.choice(["hard", "soft"]),
            )
            continue
        delivered = sent_at + timedelta(seconds=rng.randint(1, 20))
        event("delivered", delivered, source="ses")
        if rng.random() < 0.45:
            opened = delivered + timedelta(minutes=rng.expovariate(1 / 240))
            machine = rng.random() < 0.2
            event(
                "open",
                opened,
                is_machine=machine,
                user_agent="Mozilla/5.0 (via ggpht.com GoogleImageProxy)"
                if machine
                else "Mozilla/5.0",
            )
            if not machine and rng.random() < 0.35:
                event("click", opened + timedelta(seconds=rng.randint(3, 300)), url=link)
