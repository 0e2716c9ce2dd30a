"""A/B engine speed: the seeded split, the evaluation and report, the release of the rest.

    python bench/abtest.py [--scale 1.0] [--database-url URL]

Default: 100,000 recipients (x scale) on a fresh SQLite file, 5 variants, a 20% test.
Each timed step is compared with a plain UPDATE of the same rows measured in the same run,
so the ratios hold on a loaded machine. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-with-enough-length-0123456789")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="mailwright-bench-"))

import numpy as np  # noqa: E402
from sqlalchemy import insert, select, text, update  # noqa: E402

from core.abtest import engine as abtest  # noqa: E402
from core.infra.db import dispose_all, session_scope  # noqa: E402
from core.infra.migrate import migrate  # noqa: E402
from core.infra.permissions import Actor  # noqa: E402
from core.models import Campaign, Contact, Event, Message, Template, Workspace  # noqa: E402

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def build(url: str, recipients: int) -> tuple[int, int, Actor]:
    with session_scope(url) as session:
        workspace = Workspace(slug=f"bench-{time.time_ns()}", name="Bench")
        session.add(workspace)
        session.flush()
        actor = Actor.system(workspace.id)
        template = Template(workspace_id=workspace.id, name="T", subject="Hi", html="<p>Hi</p>")
        session.add(template)
        session.flush()
        for start in range(0, recipients, 50_000):
            session.execute(
                insert(Contact),
                [
                    {
                        "workspace_id": workspace.id,
                        "email": f"b{i}@example.com",
                        "custom_fields": {},
                    }
                    for i in range(start, min(start + 50_000, recipients))
                ],
            )

        def make_campaign() -> int:
            campaign = Campaign(workspace_id=workspace.id, name=f"Bench {time.time_ns()}")
            session.add(campaign)
            session.flush()
            settings = {
                "variants": [
                    {"subject": f"Subject {label}", "template_id": template.id} for label in "ABCDE"
                ],
                "test_share": 20,
                "winner_rule": "click",
                "wait_minutes": 60,
                "min_confidence": 0.9,
                "seed": 4242,
            }
            abtest.configure_ab_test(session, actor, campaign.id, settings)
            # The sending snapshot: one INSERT ... SELECT.
            session.execute(
                text(
                    "INSERT INTO message (workspace_id, campaign_id, contact_id, email, status,"
                    " attempts, error, queued_at, ab_rest)"
                    " SELECT workspace_id, :c, id, email, 'queued', 0, '', CURRENT_TIMESTAMP,"
                    " false FROM contact WHERE workspace_id = :w"
                ),
                {"c": campaign.id, "w": workspace.id},
            )
            return campaign.id

        return make_campaign(), make_campaign(), actor


def run(url: str, recipients: int) -> dict:
    campaign_id, baseline_id, actor = build(url, recipients)
    figures: dict = {"recipients": recipients, "variants": 5, "test_share": 20}

    # Baseline: one UPDATE touching every ledger row of a campaign.
    def plain_update() -> None:
        with session_scope(url) as session:
            session.execute(
                update(Message)
                .where(Message.campaign_id == baseline_id)
                .values(status="held", ab_rest=True)
                .execution_options(synchronize_session=False)
            )

    _, baseline = timed(plain_update)

    def split() -> dict:
        with session_scope(url) as session:
            counts = abtest.assign_variants(session, campaign_id)
            campaign = session.get(Campaign, campaign_id)
            campaign.status, campaign.started_at = "sending", T0
            return counts

    counts, split_s = timed(split)
    assert sum(counts.values()) == recipients

    # The test goes out and 5-12% of each variant click, 20-30% open.
    with session_scope(url) as session:
        session.execute(
            update(Message)
            .where(Message.campaign_id == campaign_id, Message.status == "queued")
            .values(status="sent", sent_at=T0)
            .execution_options(synchronize_session=False)
        )
        rng = np.random.default_rng(1)
        rows = session.execute(
            select(Message.id, Message.contact_id, Message.variant_id).where(
                Message.campaign_id == campaign_id, Message.ab_rest.is_(False)
            )
        ).all()
        variant_ids = sorted({r.variant_id for r in rows})
        events = []
        for r in rows:
            index = variant_ids.index(r.variant_id)
            at = T0 + timedelta(minutes=int(rng.integers(1, 55)))
            for kind, rate in (("open", 0.2 + 0.02 * index), ("click", 0.05 + 0.015 * index)):
                if rng.random() < rate:
                    events.append(
                        {
                            "workspace_id": actor.workspace_id,
                            "campaign_id": campaign_id,
                            "message_id": r.id,
                            "contact_id": r.contact_id,
                            "type": kind,
                            "occurred_at": at,
                            "data": {},
                            "dedupe_key": f"{kind}-{r.id}",
                        }
                    )
        session.execute(insert(Event), events)
    figures["events"] = len(events)

    def evaluate() -> dict:
        with session_scope(url) as session:
            return abtest.evaluate_ab_test(session, campaign_id, T0 + timedelta(hours=2))

    decision, evaluate_s = timed(evaluate)

    def report() -> dict:
        with session_scope(url) as session:
            return abtest.ab_report(session, actor, campaign_id, T0 + timedelta(hours=3))

    _, report_s = timed(report)

    if decision["winner"] is None:
        with session_scope(url) as session:
            leader = decision["leader"]
            campaign = session.get(Campaign, campaign_id)
            pick = next(v.id for v in campaign.variants if v.label == leader)
            abtest.choose_winner_manually(session, actor, campaign_id, pick)

    def release() -> int:
        with session_scope(url) as session:
            return abtest.release_rest(session, campaign_id)

    released, release_s = timed(release)
    again, _ = timed(release)
    assert released == counts["held"] and again == 0

    counts5 = [(120, 2000), (131, 2000), (140, 2000), (118, 2000), (150, 2000)]
    _, exact_s = timed(lambda: [abtest.probability_best(counts5) for _ in range(20)])
    rng = np.random.default_rng(3)
    _, mc_s = timed(
        lambda: [
            np.bincount(
                np.stack([rng.beta(1 + x, 1 + n - x, 100_000) for x, n in counts5]).argmax(0)
            )
            for _ in range(20)
        ]
    )
    figures |= {
        "decision": decision["outcome"],
        "winner": decision["winner"],
        "baseline_update_s": round(baseline, 3),
        "split_s": round(split_s, 3),
        "split_rows_per_s": round(recipients / split_s),
        "split_vs_plain_update": round(split_s / baseline, 2),
        "evaluate_s": round(evaluate_s, 3),
        "report_s": round(report_s, 3),
        "release_rows": released,
        "release_s": round(release_s, 3),
        "release_vs_plain_update": round(release_s / (baseline * released / recipients), 2),
        "prob_best_5_exact_ms": round(exact_s / 20 * 1000, 1),
        "prob_best_5_monte_carlo_100k_ms": round(mc_s / 20 * 1000, 1),
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x 100,000 recipients")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(os.environ['DATA_DIR']) / 'bench-abtest.db'}"
    migrate(url)
    recipients = int(100_000 * args.scale)
    figures = run(url, recipients)
    dispose_all()
    figures["backend"] = url.split(":", 1)[0]
    figures["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    for key, value in figures.items():
        print(f"{key:34} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
