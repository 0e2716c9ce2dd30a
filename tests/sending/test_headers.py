"""No header can be injected through a sender field, and a sender every transport can send
is checked when it is typed, not when the first message fails (issue 14.7)."""

from __future__ import annotations

import email
from email.policy import default

import pytest
from pydantic import ValidationError

from core.abtest.settings import VariantSettings
from core.accounts import workspaces
from core.accounts.workspaces import SendingIdentity
from core.campaigns import service as campaigns
from core.infra.errors import ValidationFailed
from core.mail.compose import build_mime
from core.models import Campaign, Workspace
from core.sending.pipeline import Composer
from tests.sending.builders import make_campaign, make_setup

INJECTED = [
    ("from_name", "Acme\r\nBcc: victim@evil.example"),
    ("from_name", "Acme\nBcc: victim@evil.example"),
    ("from_email", "news@acme.io\r\nBcc: victim@evil.example"),
    ("reply_to", "help@acme.io\nBcc: victim@evil.example"),
]


def _setup_fields(**changes: str) -> dict:
    fields = {"name": "Launch", "subject": "", "from_name": "Acme", "from_email": "news@acme.io"}
    return fields | changes


@pytest.mark.parametrize(("field", "value"), INJECTED)
def test_the_wizard_refuses_a_line_break_in_a_sender_field(session, field, value):
    setup = make_setup(session)
    cid = make_campaign(session, setup)
    with pytest.raises(ValidationFailed, match="line breaks|cannot be used"):
        campaigns.update_setup(session, setup.actor, cid, **_setup_fields(**{field: value}))
    assert "Bcc" not in getattr(session.get(Campaign, cid), field)


@pytest.mark.parametrize(("field", "value"), INJECTED)
def test_settings_refuse_a_line_break_in_a_sender_field(session, field, value):
    setup = make_setup(session)
    identity = SendingIdentity(
        name="Acme",
        from_name="Acme",
        from_email="news@acme.io",
        reply_to="",
        postal_address="1 Main St",
        max_send_rate=10,
        ses_configuration_set="",
        tracking_source="own",
    )
    setattr(identity, field, value)
    with pytest.raises(ValidationFailed):
        workspaces.update_sending_identity(session, setup.actor, identity)


def test_an_ab_variant_refuses_a_line_break_in_its_from_name():
    with pytest.raises(ValidationError, match="line breaks"):
        VariantSettings(subject="Hi", from_name="B\r\nBcc: victim@evil.example")


def test_a_non_ascii_local_part_is_refused_up_front_and_an_idna_domain_is_kept_ascii(session):
    setup = make_setup(session)
    cid = make_campaign(session, setup)
    with pytest.raises(ValidationFailed, match="Internationalized characters before the @"):
        campaigns.update_setup(session, setup.actor, cid, **_setup_fields(from_email="zoë@acme.io"))
    campaigns.update_setup(
        session, setup.actor, cid, **_setup_fields(from_email="News@Bücher.example")
    )
    assert session.get(Campaign, cid).from_email == "news@xn--bcher-kva.example"


def test_headers_are_built_by_the_email_library_and_a_stored_line_break_stops_the_campaign(
    session,
):
    setup = make_setup(session)
    cid = make_campaign(session, setup)
    campaign = session.get(Campaign, cid)
    workspace = session.get(Workspace, setup.workspace_id)
    campaign.from_name = 'Zoë, "Marketing"'
    composer = Composer(campaign, workspace)
    assert composer.from_header.startswith("From: =?utf-8?")
    parsed = email.message_from_string(composer.from_header + "\r\n\r\n", policy=default)
    assert parsed["From"].addresses[0].display_name == 'Zoë, "Marketing"'
    assert parsed["From"].addresses[0].addr_spec == "news@acme.io"
    # A row written before these checks existed (or by hand) cannot add a header either.
    campaign.from_name = "Acme\r\nBcc: victim@evil.example"
    with pytest.raises(ValidationFailed):
        Composer(campaign, workspace)


def test_system_and_test_mails_refuse_injected_headers():
    with pytest.raises(ValidationFailed):
        build_mime(
            sender="news@acme.io",
            sender_name="Acme\r\nBcc: victim@evil.example",
            to="a@example.com",
            subject="Hi",
            html=None,
            text="x",
        )
    raw = build_mime(
        sender="news@acme.io", to="a@example.com", subject="Hi\r\nBcc: x@evil", html=None, text="x"
    )
    assert b"\r\nBcc:" not in raw
