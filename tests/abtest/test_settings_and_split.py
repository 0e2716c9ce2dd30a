"""Settings validation, variants written, and the seeded split of the ledger."""

from __future__ import annotations

from collections import Counter

import pytest
from scipy.stats import chi2_contingency
from sqlalchemy import delete, select

from core import abtest
from core.campaigns import split
from core.infra.config import settings
from core.infra.errors import NotFound, PermissionDenied, ValidationFailed
from core.models import Campaign, Contact, Message, Variant
from tests.abtest.builders import (
    make_ab_campaign,
    make_contacts,
    make_templates,
    settings_for,
    snapshot,
    start,
)
from tests.helpers import actor_of, make_user, make_workspace
from tests.templates.openai_server import FakeOpenAI


@pytest.fixture
def team(session):
    workspace = make_workspace(session)
    return workspace, actor_of(make_user(session, workspace, role="editor"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variants": [{"subject": "Only", "template_id": 1}]}, "2 to 5 variants"),
        ({"test_share": 60}, "5% to 50%"),
        ({"test_share": 4}, "5% to 50%"),
        ({"wait_minutes": 30}, "between 1 hour and 7 days"),
        ({"wait_minutes": 7 * 24 * 60 + 1}, "between 1 hour and 7 days"),
        ({"min_confidence": 0.5}, "above 50%"),
        ({"winner_rule": "revenue"}, "winner_rule"),
    ],
)
def test_invalid_settings_are_refused_with_a_reason(session, team, change, message):
    workspace, actor = team
    templates = make_templates(session, workspace)
    with pytest.raises(ValidationFailed, match=message):
        make_ab_campaign(session, actor, workspace, settings_for(templates) | change)


def test_variants_must_differ_have_content_and_templates_of_the_workspace(session, team):
    workspace, actor = team
    templates = make_templates(session, workspace)
    same = settings_for(templates)
    same["variants"][1] = dict(same["variants"][0])
    with pytest.raises(ValidationFailed, match="Variants A and B are identical"):
        make_ab_campaign(session, actor, workspace, same)
    empty = settings_for(templates)
    empty["variants"][1]["subject"] = "  "
    with pytest.raises(ValidationFailed, match="Variant B has no subject"):
        make_ab_campaign(session, actor, workspace, empty)
    other = make_templates(session, make_workspace(session), 1)[0]
    foreign = settings_for([templates[0], other])
    with pytest.raises(ValidationFailed, match=f"Template {other} does not exist"):
        make_ab_campaign(session, actor, workspace, foreign)


def test_configure_writes_variants_and_can_be_redone_until_sending(session, team):
    workspace, actor = team
    templates = make_templates(session, workspace, 3)
    settings = settings_for(templates, n=3, test_share=30, winner_rule="open")
    settings["variants"][2]["from_name"] = "Ana from Acme"
    campaign = make_ab_campaign(session, actor, workspace, settings)
    assert [(v.label, v.subject, v.template_id) for v in campaign.variants] == [
        ("A", "Subject A", templates[0]),
        ("B", "Subject B", templates[1]),
        ("C", "Subject C", templates[2]),
    ]
    assert campaign.variants[2].from_name == "Ana from Acme"
    assert sum(v.share for v in campaign.variants) == pytest.approx(0.3)
    assert (campaign.ab_winner_metric, campaign.ab_seed) == ("open", 12345)
    stored = abtest.ab_settings(session, actor, campaign.id)
    assert (
        abtest.validate_settings(stored).model_dump()
        == abtest.validate_settings(settings).model_dump()
    )

    abtest.configure_ab_test(session, actor, campaign.id, settings_for(templates, n=2))
    session.expire_all()
    campaign = session.get(Campaign, campaign.id)
    assert [v.label for v in campaign.variants] == ["A", "B"]

    campaign.status = "sending"
    with pytest.raises(ValidationFailed, match="sending cannot be changed"):
        abtest.configure_ab_test(session, actor, campaign.id, settings_for(templates))
    viewer = actor_of(make_user(session, workspace, role="viewer"))
    with pytest.raises(PermissionDenied):
        abtest.configure_ab_test(session, viewer, campaign.id, settings_for(templates))
    stranger = actor_of(make_user(session, make_workspace(session)))
    with pytest.raises(NotFound):
        abtest.configure_ab_test(session, stranger, campaign.id, settings_for(templates))


def _assignment(session, campaign) -> dict[int, str]:
    labels = {v.id: v.label for v in campaign.variants}
    return {
        contact_id: ("held" if rest else labels[variant_id])
        for contact_id, variant_id, rest in session.execute(
            select(Message.contact_id, Message.variant_id, Message.ab_rest).where(
                Message.campaign_id == campaign.id
            )
        )
    }


def test_split_sizes_disjoint_deterministic_and_uniform(session, team):
    workspace, actor = team
    templates = make_templates(session, workspace)
    contacts = make_contacts(session, workspace, 5000)

    campaign = make_ab_campaign(session, actor, workspace, settings_for(templates, n=3))
    snapshot(session, campaign, contacts)
    counts = start(session, campaign)
    # 20% of 5000 = 1000 over three variants: 334, 333, 333; the other 4000 held.
    assert counts == {"A": 334, "B": 333, "C": 333, "held": 4000}
    assignment = _assignment(session, campaign)
    assert len(assignment) == 5000 and Counter(assignment.values()) == Counter(counts)
    held = session.execute(
        select(Message.status, Message.variant_id).where(
            Message.campaign_id == campaign.id, Message.ab_rest.is_(True)
        )
    ).all()
    assert set(held) == {("held", None)}

    # Idempotent: a second call changes nothing.
    assert split.assign_variants(session, campaign.id) == counts
    assert _assignment(session, campaign) == assignment
    # A re-run of the snapshot that adds recipients: they join the held rest.
    late = make_contacts(session, workspace, 3)
    snapshot(session, campaign, late)
    assert split.assign_variants(session, campaign.id) == counts | {"held": 4003}
    assert {_assignment(session, campaign)[c] for c in late} == {"held"}
    session.execute(delete(Message).where(Message.contact_id.in_(late)))
    session.execute(delete(Contact).where(Contact.id.in_(late)))

    # The same seed on the same audience gives the same split; another seed does not.
    twin = make_ab_campaign(session, actor, workspace, settings_for(templates, n=3))
    snapshot(session, twin, list(reversed(contacts)))
    start(session, twin)
    assert _assignment(session, twin) == assignment
    other = make_ab_campaign(session, actor, workspace, settings_for(templates, n=3, seed=999))
    snapshot(session, other, contacts)
    start(session, other)
    reshuffled = _assignment(session, other)
    differ = sum(reshuffled[c] != assignment[c] for c in contacts)
    assert differ > 1000

    # Uniform: which group a contact lands in does not depend on where it is in the
    # audience (chi-square of group x audience decile, fixed seed so it cannot flake).
    groups = ["A", "B", "C", "held"]
    table = [[0] * 10 for _ in groups]
    for position, contact_id in enumerate(contacts):
        table[groups.index(assignment[contact_id])][position * 10 // len(contacts)] += 1
    assert chi2_contingency(table).pvalue > 0.05


def test_compare_only_single_variant_and_too_small_audiences(session, team):
    workspace, actor = team
    templates = make_templates(session, workspace)
    contacts = make_contacts(session, workspace, 101)

    everyone = make_ab_campaign(session, actor, workspace, settings_for(templates, test_share=100))
    snapshot(session, everyone, contacts)
    assert start(session, everyone) == {"A": 51, "B": 50, "held": 0}

    plain = Campaign(workspace_id=workspace.id, name="Plain")
    session.add(plain)
    session.flush()
    plain.variants.append(Variant(label="A", subject="Hello", template_id=templates[0]))
    session.flush()
    snapshot(session, plain, contacts)
    assert split.assign_variants(session, plain.id) == {"A": 101, "held": 0}

    tiny = make_ab_campaign(session, actor, workspace, settings_for(templates, n=5, test_share=5))
    snapshot(session, tiny, contacts[:40])
    with pytest.raises(ValidationFailed, match="too small for 5 variants"):
        split.assign_variants(session, tiny.id)


def test_subject_suggestions_from_the_ai_assistant(session, team, monkeypatch):
    workspace, actor = team
    template = make_templates(session, workspace, 1)[0]
    monkeypatch.setattr(settings, "openai_api_key", "")
    with pytest.raises(abtest.AIUnavailable, match="not configured"):
        abtest.suggest_subject_variants(session, actor, "Spring sale", 3)

    with FakeOpenAI() as server:  # a real local chat-completions server
        monkeypatch.setattr(settings, "openai_api_key", "sk-test-key")
        monkeypatch.setattr(settings, "openai_base_url", server.base_url)
        monkeypatch.setattr(settings, "openai_timeout", 5.0)
        server.behaviour.answer = "1. Spring sale\n2. Spring is here\n- Fresh picks\nLast days"
        got = abtest.suggest_subject_variants(session, actor, "Spring sale", 2, template)
        prompt = server.behaviour.requests[-1]["body"]["messages"][1]["content"]
    assert got == ["Spring is here", "Fresh picks"]
    assert "Current subject: Spring sale" in prompt and "<p>Hi</p>" in prompt
