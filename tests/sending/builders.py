"""A workspace ready to send: sender, template, lists and contacts, via the core functions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.campaigns import service as campaigns
from core.infra.permissions import Actor
from core.models import ContactList, ListMembership, Suppression, Template
from tests.helpers import actor_of, make_contact, make_user, make_workspace

HTML = (
    "<html><body><p>Hello {{ first_name | default('there') }} from {{ company }}!</p>"
    '<p><a href="https://example.org/offer?a=1&amp;b=2">See the offer</a></p></body></html>'
)


@dataclass
class Setup:
    actor: Actor
    workspace_id: int
    template_id: int
    list_id: int
    other_list_id: int


def make_setup(session: Session, contacts: int = 5, rate: float = 1000.0) -> Setup:
    ws = make_workspace(
        session,
        from_email="news@acme.io",
        from_name="Acme News",
        postal_address="1 Main St",
        max_send_rate=rate,
    )
    actor = actor_of(make_user(session, ws))
    template = Template(
        workspace_id=ws.id, name="Welcome", subject="Hi {{ first_name }}", html=HTML, text=None
    )
    first = ContactList(workspace_id=ws.id, name="Customers")
    second = ContactList(workspace_id=ws.id, name="Newsletter")
    session.add_all([template, first, second])
    session.flush()
    for i in range(contacts):
        c = make_contact(
            session, ws, email=f"r{i}@example.com", first_name=f"Name{i}", company="Initech"
        )
        session.add(ListMembership(list_id=first.id, contact_id=c.id))
        if i % 2 == 0:  # in both lists: still one message
            session.add(ListMembership(list_id=second.id, contact_id=c.id))
    session.flush()
    return Setup(actor, ws.id, template.id, first.id, second.id)


def add_excluded(session: Session, setup: Setup) -> list[str]:
    """Contacts in the list who must not receive anything; returns their addresses."""
    from core.models import Workspace

    ws = session.get(Workspace, setup.workspace_id)
    excluded = []
    for status in ("unsubscribed", "bounced", "complained"):
        c = make_contact(session, ws, email=f"{status}@example.com", status=status)
        session.add(ListMembership(list_id=setup.list_id, contact_id=c.id))
        excluded.append(c.email)
    c = make_contact(session, ws, email="suppressed@example.com")
    session.add(ListMembership(list_id=setup.list_id, contact_id=c.id))
    session.add(Suppression(workspace_id=ws.id, email=c.email, reason="manual"))
    excluded.append(c.email)
    session.flush()
    return excluded


def make_campaign(session: Session, setup: Setup, name: str = "Launch", lists=None) -> int:
    c = campaigns.create_campaign(session, setup.actor, name)
    campaigns.update_setup(
        session,
        setup.actor,
        c.id,
        name=name,
        subject="",
        from_name="Acme News",
        from_email="news@acme.io",
    )
    campaigns.update_audience(
        session, setup.actor, c.id, {"list_ids": lists or [setup.list_id, setup.other_list_id]}
    )
    campaigns.update_template(session, setup.actor, c.id, setup.template_id)
    session.flush()
    return c.id
