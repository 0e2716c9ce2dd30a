"""Releasing the rest against a real database from several transactions, and the beat task."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from core import abtest
from core.infra import clock
from core.infra.db import session_scope
from core.infra.permissions import Actor
from core.models import Campaign
from tests.abtest.builders import T0, committed_test, rest_states


def test_concurrent_releases_queue_the_rest_exactly_once(live_db):
    campaign_id = committed_test()
    with session_scope() as session:
        assert abtest.evaluate_ab_test(session, campaign_id, T0 + timedelta(hours=4))["winner"]
        winner = session.get(Campaign, campaign_id).ab_winner_variant_id

    first_updated = threading.Event()
    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with session_scope() as session:
                results["first"] = abtest.release_rest(session, campaign_id)
                first_updated.set()
                # Hold the transaction open so the second release runs into it.
                time.sleep(0.5)
        except BaseException as exc:
            errors.append(exc)
            first_updated.set()

    def second() -> None:
        first_updated.wait(10)
        try:
            with session_scope() as session:
                results["second"] = abtest.release_rest(session, campaign_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert results == {"first": 1600, "second": 0}
    assert rest_states(campaign_id) == [("queued", winner, 1600)]


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Campaign ids the A/B release hands to dispatch_batches (which still runs)."""
    import core.abtest.lifecycle

    calls: list[int] = []
    original = core.abtest.lifecycle.dispatch_batches

    def recording(session, campaign_id):
        calls.append(campaign_id)
        return original(session, campaign_id)

    monkeypatch.setattr(core.abtest.lifecycle, "dispatch_batches", recording)
    return calls


def test_beat_task_decides_and_releases_once(live_db, dispatched, enqueued):
    from worker.tasks_abtest import evaluate_ab_tests, release_ab_rest

    decided = committed_test()
    undecided = committed_test(winner_clicks=22, loser_clicks=20)
    clock.freeze(T0 + timedelta(hours=3))
    assert evaluate_ab_tests() == {"due": 0, "decided": 0, "released": 0}
    clock.freeze(T0 + timedelta(hours=4, minutes=1))
    assert evaluate_ab_tests() == {"due": 2, "decided": 2, "released": 1600}
    assert dispatched == [decided]
    assert evaluate_ab_tests() == {"due": 0, "decided": 0, "released": 0}
    assert rest_states(undecided)[0][0] == "held"

    # The marketer picks for the undecided one; the release task is what the pick enqueues.
    with session_scope() as session:
        campaign = session.get(Campaign, undecided)
        editor = Actor(workspace_id=campaign.workspace_id, role="editor", email="ed@example.com")
        pick = campaign.variants[0].id
        abtest.choose_winner_manually(session, editor, undecided, pick)
    batches = [args for name, args, _ in enqueued if name == "worker.tasks_sending.send_batch"]
    assert {args[0] for args in batches} == {decided}
    assert sum(args[2] - args[1] + 1 for args in batches) >= 1600
    assert enqueued[-1] == (abtest.RELEASE_TASK, (undecided,), {})
    assert release_ab_rest(undecided) == 1600
    assert release_ab_rest(undecided) == 0
    assert dispatched == [decided, undecided]
    assert rest_states(undecided) == [("queued", pick, 1600)]
