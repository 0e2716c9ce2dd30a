"""Campaigns: the list with its controls, or the wizard (ui/campaign_wizard.py) for one."""

from datetime import datetime, time

import streamlit as st

from core import deliverability
from core.campaigns import service as campaigns
from core.models import CAMPAIGN_STATUSES
from core.models.statuses import ACTIVE, Action, CampaignStatus, allowed_actions
from ui.actions import act, arm, ask_first
from ui.campaign_wizard import open_wizard, wizard
from ui.format import count_column, status_column, when, zone
from ui.resend import resend_form
from ui.state import actor, db, read_db, shows_errors
from ui.waves import waves_section

me = actor()


# --- the list ----------------------------------------------------------------------------


def campaign_list() -> None:
    st.title("Campaigns")
    if me.can("edit"):
        with st.form("new_campaign", clear_on_submit=True):
            left, right = st.columns([3, 1], vertical_alignment="bottom")
            name = left.text_input("New campaign name")
            if right.form_submit_button("Create campaign", type="primary"):
                created = None
                with shows_errors(), db() as session:
                    created = campaigns.create_campaign(session, me, name).id
                if created:  # rerun outside the transaction, or it would roll back
                    open_wizard(created)
                    st.rerun()

    search, status, since = st.columns([2, 2, 1])
    text = search.text_input("Search by name")
    statuses = status.multiselect("Status", CAMPAIGN_STATUSES)
    created_since = since.date_input("Created since", value=None)
    after = datetime.combine(created_since, time(), zone()) if created_since else None
    rows = _rows(text, statuses, after)
    if not rows:
        st.info("No campaigns yet." if not (text or statuses) else "No campaign matches.")
        return
    # While a campaign sends (or is due within the hour) the table refreshes itself.
    live = any(r.live for r in rows)
    st.fragment(run_every=LIVE_SECONDS if live else None)(_table)(text, statuses, after, live)


LIVE_SECONDS = 3


def _rows(text: str, statuses: list[str], after: datetime | None) -> list[campaigns.CampaignRow]:
    with read_db() as session:
        return campaigns.list_campaigns(session, me, text, statuses, after)


def _table(text: str, statuses: list[str], after: datetime | None, live: bool) -> None:
    rows = _rows(text, statuses, after)
    if live and not any(r.live for r in rows):
        st.rerun()  # the last one finished: draw the page again, without the timer
    any_waves = any(r.waves for r in rows)  # a column only when a campaign goes in waves
    st.dataframe(
        [
            {
                "Name": r.name,
                "Status": [r.status],
                "Subject": r.subject,
                "Recipients": r.recipients,
                "Queued": r.queued,
                "Sent": r.sent,
                "Failed": r.failed,
                "Progress": r.progress,
                **({"Waves": r.waves} if any_waves else {}),
                "Scheduled": when(r.scheduled_at),
                "Finished": when(r.finished_at),
            }
            for r in rows
        ],
        column_config={
            "Status": status_column(),
            "Subject": st.column_config.TextColumn("Subject", width=170),
            "Recipients": count_column(
                "Recipients",
                help="For a scheduled campaign, the audience as it stands now (an estimate) "
                "until it starts sending.",
            ),
            "Queued": count_column("Queued"),
            "Sent": count_column("Sent"),
            "Failed": count_column("Failed"),
            "Progress": st.column_config.ProgressColumn(min_value=0, max_value=1, width=100),
            "Waves": st.column_config.TextColumn(
                "Time-zone waves",
                width=280,
                help="Sent at a time of day in each contact's zone: waves sent so far and the "
                "next one.",
            ),
        },
        hide_index=True,
        width="stretch",
    )
    by_id = {r.id: r for r in rows}
    chosen = st.selectbox(
        "Campaign",
        list(by_id),
        format_func=lambda cid: f"{by_id[cid].name} ({by_id[cid].status})",
        key="cw_selected",
    )
    if chosen is not None:
        campaign_controls(by_id[chosen])


def campaign_controls(row: campaigns.CampaignRow) -> None:
    if row.status in ACTIVE and row.recipients:
        st.progress(row.progress, f"{row.sent:,} sent, {row.failed:,} failed of {row.recipients:,}")
    if row.error:
        st.error(row.error)
    if row.waves:
        waves_section(row.id)
    # Which actions apply, and why not, come from core's one transition table.
    verdicts = allowed_actions(row.status, failed=row.failed)
    shown = [a for a in Action if a is not Action.SEND]  # sending is the wizard's last step
    can = me.can("edit")
    clicked = None
    for column, action in zip(st.columns(len(shown)), shown, strict=True):
        verdict = verdicts[action]
        reason = verdict.reason
        if verdict and not can and action is not Action.REPORT:
            reason = "Viewers can look but not change campaigns."
        if column.button(
            action.value, key=f"cw_{action.value}", disabled=bool(reason), help=reason or None
        ):
            clicked = action.value
    if clicked in ("Cancel", "Delete"):  # cannot be undone: ask first
        arm(f"cw_confirm_{clicked}_{row.id}")
    if clicked == "Resume":  # past the deliverability guard: ask first, and record who
        with read_db() as session:
            question = deliverability.resume_question(session, me, row.id)
        if question:
            st.session_state[f"cw_guard_question_{row.id}"] = question
            arm(f"cw_confirm_override_{row.id}")
    if ask_first(
        f"cw_confirm_override_{row.id}",
        st.session_state.get(f"cw_guard_question_{row.id}", ""),
        "Yes, resume past the guard",
    ):
        act(
            lambda s: campaigns.resume(s, me, row.id, override_guard=True),
            f"Resumed “{row.name}”: you overrode the deliverability guard (recorded).",
        )
    resend_key = f"cw_resend_{row.id}"
    if clicked == Action.RESEND:  # a form first: subject and time
        st.session_state[f"{resend_key}_shown"] = True
        st.rerun()
    if st.session_state.get(f"{resend_key}_shown"):
        resend_form(row.id, resend_key)
    if ask_first(
        f"cw_confirm_Cancel_{row.id}",
        f"Cancel “{row.name}”? The {row.unsent:,} message{'s' if row.unsent != 1 else ''} not yet "
        "sent will not go out; a cancelled campaign cannot be resumed.",
        "Yes, cancel it",
    ):
        act(lambda s: campaigns.cancel(s, me, row.id), f"Cancelled “{row.name}”.")
    if ask_first(
        f"cw_confirm_Delete_{row.id}",
        f"Delete “{row.name}”? Its messages, events and report go with it. This cannot be undone.",
        "Yes, delete it",
    ):
        act(lambda s: campaigns.delete_campaign(s, me, row.id), f"Deleted “{row.name}”.")
    if clicked and clicked not in ("Cancel", "Delete"):
        with shows_errors(), db() as session:
            if clicked == "Edit":
                if row.status == CampaignStatus.SCHEDULED:
                    campaigns.unschedule(session, me, row.id)
                open_wizard(row.id)
            elif clicked == "Pause":
                campaigns.pause(session, me, row.id)
            elif clicked == "Resume":
                campaigns.resume(session, me, row.id)
            elif clicked == "Retry failed":
                campaigns.retry_failed(session, me, row.id)
            elif clicked == "Clone":
                open_wizard(campaigns.clone_campaign(session, me, row.id).id)
            elif clicked == "Report":
                st.session_state["report_campaign_id"] = row.id
        if clicked == "Report":
            st.switch_page("pages/reports.py")
        st.rerun()
    if row.failed or row.status == CampaignStatus.SENT:
        with read_db() as session:
            failed = campaigns.failures(session, me, row.id)
        if failed:
            with st.expander(f"Why messages failed or need a look ({len(failed)})"):
                st.dataframe(failed, hide_index=True, use_container_width=True)


editing = st.session_state.get("cw_campaign")
if editing is None:
    campaign_list()
else:
    with shows_errors():
        wizard(editing)
