"""Dashboard, Reports and Data pages through app.py with AppTest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.analytics import rollups
from core.infra import clock
from core.infra.db import session_scope
from core.models import Workspace
from tests.analytics.dataset import T0, build_known
from tests.apptest_db import seed_user
from tests.pages.apptest import by_label, new_app, sign_in, texts


@pytest.fixture
def seeded(live_db, tmp_path, monkeypatch):
    from core.infra.config import settings

    monkeypatch.setattr(settings, "rollup_path", tmp_path / "rollups.duckdb")
    email = seed_user()
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        known = build_known(session, ws.id)
    clock.freeze(T0 + timedelta(days=3))
    return email, known


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_dashboard_before_and_after_the_rollup(seeded):
    email, _ = seeded
    at = sign_in(new_app(), email)
    assert not at.exception, at.exception
    assert "Dashboard" in texts(at)
    # Live before any rollup: figures, not dashes, and no command to run.
    metrics = _metrics(at)
    assert metrics["Subscribed contacts"] == "14"
    assert metrics["Emails sent, 30 days"] == "11"
    assert metrics["Average open rate"] == "21.4%"
    assert "–" not in metrics.values()
    assert "python -m" not in texts(at) and "counted from the database" in texts(at)
    assert any("SES pause" in w.value for w in at.warning)

    rollups.build_rollups(lag_seconds=0)
    at.run()
    assert not at.exception, at.exception
    assert _metrics(at) == metrics
    assert "plus everything since" in texts(at)


def test_report_page_figures_and_recipients(seeded):
    email, known = seeded
    at = sign_in(new_app(), email)
    at.query_params["campaign"] = str(known.campaign_id)
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    metrics = _metrics(at)
    assert metrics["Unique opens"] == "3" and metrics["Total opens"] == "5"
    assert metrics["Automatic opens"] == "1" and metrics["Delivered"] == "7"
    assert metrics["Hard / soft bounces"] == "1 / 1"
    rates = at.table[0].value
    assert "42.9%" in set(rates["Value"])  # open rate 3/7
    by_label(at.text_input, "Search recipients").input("gmail").run()
    assert "5 recipients match" in texts(at)
    by_label(at.button, "Prepare CSV export").click().run()
    assert not at.exception, at.exception
    assert at.get("download_button")

    compare = by_label(at.multiselect, "Campaigns to compare")
    compare.set_value([known.campaign_id, known.smtp_campaign_id]).run()
    assert not at.exception, at.exception
    table = at.table[-1].value.set_index("Figure")
    assert list(table.columns) == ["November news", "Over SMTP"]
    assert list(table.loc["People who opened"]) == ["3", "0"]

    by_label(at.selectbox, "Campaign").set_value(known.idle_campaign_id).run()
    assert not at.exception, at.exception
    assert "refreshes every 5 seconds" in texts(at)
    assert _metrics(at)["Delivered"] == "0"


def test_data_page_runs_a_query_and_refuses_a_write(seeded):
    email, known = seeded
    rollups.build_rollups(lag_seconds=0)
    at = sign_in(new_app(), email)
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    by_label(at.text_area, "SQL").input("SELECT name, unique_opens FROM campaigns ORDER BY 1")
    by_label(at.button, "Run query").click().run()
    frame = at.dataframe[0].value
    assert list(frame["name"]) == ["Not started", "November news", "Over SMTP"]
    by_label(at.text_area, "SQL").input("DELETE FROM campaigns")
    by_label(at.button, "Run query").click().run()
    assert "Only a single SELECT" in texts(at)
    by_label(at.button, "Most clicked links").click().run()
    assert "link_clicks" in by_label(at.text_area, "SQL").value


def test_data_page_says_when_the_rollups_were_built_and_rebuilds_on_request(seeded, enqueued):
    email, _ = seeded
    at = sign_in(new_app(), email)
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert "have not been built yet" in texts(at) and "python -m" not in texts(at)
    by_label(at.button, "Rebuild now").click().run()
    assert not at.exception, at.exception
    assert [name for name, _, _ in enqueued] == ["worker.tasks_analytics.rebuild_rollups"]
    assert by_label(at.button, "Rebuild now").disabled  # a second click queues nothing
    assert at.get("progress")[0].proto.text.startswith("Queued")

    from core.infra.db import get_sessionmaker

    rollups.run_rebuild(get_sessionmaker(), enqueued[0][1][0])  # the worker's part
    at.run()
    assert not at.exception, at.exception
    built = rollups.rollup_status()
    assert f"up to event #{built['events_max_id']:,}" in texts(at)
    assert "Built just now" in texts(at) or "minute" in texts(at)
    assert not by_label(at.button, "Rebuild now").disabled and not at.get("progress")


def test_a_viewer_sees_when_but_no_rebuild_button(live_db, tmp_path, monkeypatch):
    from core.infra.config import settings

    monkeypatch.setattr(settings, "rollup_path", tmp_path / "rollups.duckdb")
    email = seed_user(role="viewer")
    rollups.build_rollups(lag_seconds=0)
    at = sign_in(new_app(), email)
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert "up to event #" in texts(at)
    assert "Rebuild now" not in [b.label for b in at.button]
