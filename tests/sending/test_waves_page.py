"""The wizard's "Send at this time in each contact's time zone" and the waves on the campaign
list and the report, through app.py (AppTest)."""

from __future__ import annotations

from core.infra import clock
from core.infra.db import session_scope
from core.models import Campaign
from tests.pages.apptest import by_label, new_app, sign_in, texts
from tests.sending.test_pipeline import run_tasks
from tests.sending.test_waves import KOLKATA, START, _tick_and_run, _zoned_setup


def test_wizard_sends_in_waves_and_the_list_and_report_show_them(live_db, enqueued):
    clock.freeze(START)
    setup, cid = _zoned_setup()
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    at.session_state["cw_campaign"] = cid
    at.session_state["cw_step"] = 3
    at.run()
    assert not at.exception, at.exception
    at.toggle(key=f"cw_local_{cid}").set_value(True).run()
    assert by_label(at.time_input, "Time in each contact's zone").value.strftime("%H:%M") == "09:00"
    shown = texts(at)
    assert (
        "Sent now: 9 contacts in 4 time zones, 4 waves: the first goes 2026-12-07 03:30 UTC "
        "(09:00 IST Asia/Kolkata), the last 2026-12-07 20:00 UTC (09:00 NZDT Pacific/Auckland)."
    ) in shown
    by_label(at.button, "Send now").click()
    at.run()
    assert "at 09:00 in each one's time zone, starting now?" in texts(at)
    by_label(at.button, "Yes, send now").click()
    at.run()
    assert not at.exception, at.exception
    with session_scope() as s:
        assert s.get(Campaign, cid).local_send_time == "09:00"
    assert "goes out at 09:00 in each contact's time zone" in texts(at)

    run_tasks(enqueued)  # the start: nobody's 09:00 yet
    clock.freeze(KOLKATA)
    _tick_and_run(enqueued)  # Kolkata's wave
    at.switch_page("pages/campaigns.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["Waves"]) == ["sending in waves: 1 of 4 sent, next 09:00 CET Europe/Berlin"]
    assert "**Time-zone waves**: sending in waves: 1 of 4 sent" in texts(at)

    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    waves_table = next(d.value for d in at.dataframe if "Zones" in d.value)
    assert list(waves_table["Zones"]) == [
        "Asia/Kolkata",
        "Europe/Berlin",
        "America/New_York",
        "Pacific/Auckland",
    ]
    assert list(waves_table["Sent"]) == [2, 0, 0, 0]
    assert list(waves_table["Pending"]) == [0, 4, 2, 1]
