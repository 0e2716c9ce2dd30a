"""The whole A/B flow through the real sending pipeline, in-process, to the outbox."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from core import abtest
from core.campaigns import service as campaigns
from core.infra import clock
from core.infra.db import get_sessionmaker, session_scope
from core.models import Campaign, Message
from core.sending import pipeline as sending
from tests.abtest.builders import T0, add_events
from tests.helpers import outbox_messages
from tests.sending.builders import make_campaign, make_setup

SUBJECTS = {"A": "Spring sale {{ first_name }}", "B": "Last days, {{ first_name }}"}


def _run(enqueued: list, repeat_batches: bool = False) -> None:
    """The worker's job: run recorded tasks until none are left (batches twice if asked)."""
    while enqueued:
        name, args, _ = enqueued.pop(0)
        for _ in range(2 if repeat_batches and name == sending.BATCH_TASK else 1):
            if name == "worker.tasks_sending.start_campaign":
                sending.start_campaign(get_sessionmaker(), *args)
            elif name == sending.BATCH_TASK:
                sending.send_batch(get_sessionmaker(), *args)


def test_ab_campaign_end_to_end(live_db, enqueued, outbox):
    from worker.tasks_abtest import evaluate_ab_tests, release_ab_rest

    clock.freeze(T0)
    with session_scope() as s:
        setup = make_setup(s, contacts=1000)
        cid = make_campaign(s, setup)
        settings = {
            "variants": [
                {"subject": SUBJECTS[label], "template_id": setup.template_id} for label in "AB"
            ],
            "test_share": 20,
            "winner_rule": "click",
            "wait_minutes": 60,
            "min_confidence": 0.9,
            "seed": 2026,
        }
        abtest.configure_ab_test(s, setup.actor, cid, settings)
        campaigns.send_now(s, setup.actor, cid)
    _run(enqueued, repeat_batches=True)

    # The test went out: 100 + 100, each once; 800 held; the campaign waits.
    sent = outbox_messages(outbox)
    assert len(sent) == 200 and len({m["To"] for m in sent}) == 200
    kinds = Counter(m["Subject"].split(" ")[0] for m in sent)
    assert kinds == {"Spring": 100, "Last": 100}
    with session_scope() as s:
        assert s.get(Campaign, cid).status == "sending"
        by_label = {v.label: v.id for v in s.get(Campaign, cid).variants}
        test_ids = {
            label: list(
                s.scalars(
                    select(Message.id)
                    .where(Message.variant_id == vid, Message.status == "sent")
                    .order_by(Message.id)
                )
            )
            for label, vid in by_label.items()
        }
        campaign = s.get(Campaign, cid)
        add_events(s, campaign, test_ids["A"][:4], "click")
        add_events(s, campaign, test_ids["B"][:19], "click")

    clock.freeze(T0 + timedelta(minutes=30))
    assert evaluate_ab_tests() == {"due": 0, "decided": 0, "released": 0}
    clock.freeze(T0 + timedelta(minutes=61))
    assert evaluate_ab_tests() == {"due": 1, "decided": 1, "released": 800}
    assert evaluate_ab_tests() == {"due": 0, "decided": 0, "released": 0}
    assert release_ab_rest(cid) == 0
    _run(enqueued, repeat_batches=True)

    # Everyone exactly once; the rest got the winner, B.
    sent = outbox_messages(outbox)
    assert len(sent) == 1000 and len({m["To"] for m in sent}) == 1000
    kinds = Counter(m["Subject"].split(" ")[0] for m in sent)
    assert kinds == {"Spring": 100, "Last": 900}
    with session_scope() as s:
        report = abtest.ab_report(s, setup.actor, cid)
        assert s.get(Campaign, cid).status == "sent"
    assert report["winner"]["label"] == "B"
    assert report["rest"]["sent"] == 800 and report["totals"]["sent"] == 1000
    assert report["held"] == 0
