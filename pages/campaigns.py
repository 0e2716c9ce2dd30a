"""Campaigns: the list with its controls, and the four-step wizard (draft saved at each step)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import streamlit as st

from core import abtest, ai, campaigns, clock
from core.audience import count_recipients
from core.contacts import search_contacts
from core.models import CAMPAIGN_STATUSES
from core.statuses import EDITABLE, Action, allowed_actions
from ui.abtest import ab_settings_section
from ui.actions import act, flash
from ui.preview import show_email
from ui.state import actor, db, read_db, shows_errors
from ui.text import md

me = actor()
STEPS = ["1. Setup", "2. Recipients", "3. Template", "4. Review"]
ZONES = sorted(available_timezones())


def open_wizard(campaign_id: int | None, step: int = 0) -> None:
    st.session_state["cw_campaign"] = campaign_id
    st.session_state["cw_step"] = step


def fmt(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


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
    with read_db() as session:
        rows = campaigns.list_campaigns(
            session,
            me,
            text,
            statuses,
            datetime.combine(created_since, time(), clock.now().tzinfo) if created_since else None,
        )
    if not rows:
        st.info("No campaigns yet." if not (text or statuses) else "No campaign matches.")
        return
    st.dataframe(
        [
            {
                "Name": r.name,
                "Status": r.status,
                "Subject": r.subject,
                "Recipients": r.recipients,
                "Queued": r.queued,
                "Sent": r.sent,
                "Failed": r.failed,
                "Progress": r.progress,
                "Scheduled": fmt(r.scheduled_at),
                "Finished": fmt(r.finished_at),
            }
            for r in rows
        ],
        column_config={"Progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
        hide_index=True,
        use_container_width=True,
    )
    chosen = st.selectbox(
        "Campaign", rows, format_func=lambda r: f"{r.name} ({r.status})", key="cw_selected"
    )
    if chosen is not None:
        campaign_controls(chosen)


def campaign_controls(row: campaigns.CampaignRow) -> None:
    if row.status in ("sending", "paused") and row.recipients:
        st.progress(row.progress, f"{row.sent} sent, {row.failed} failed of {row.recipients}")
    if row.error:
        st.error(row.error)
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
    if clicked:
        with shows_errors(), db() as session:
            if clicked == "Edit":
                if row.status == "scheduled":
                    campaigns.unschedule(session, me, row.id)
                open_wizard(row.id)
            elif clicked == "Pause":
                campaigns.pause(session, me, row.id)
            elif clicked == "Resume":
                campaigns.resume(session, me, row.id)
            elif clicked == "Cancel":
                campaigns.cancel(session, me, row.id)
            elif clicked == "Retry failed":
                campaigns.retry_failed(session, me, row.id)
            elif clicked == "Clone":
                open_wizard(campaigns.clone_campaign(session, me, row.id).id)
            elif clicked == "Delete":
                campaigns.delete_campaign(session, me, row.id)
            elif clicked == "Report":
                st.session_state["report_campaign_id"] = row.id
        if clicked == "Report":
            st.switch_page("pages/reports.py")
        st.rerun()
    if row.failed or row.status == "sent":
        with read_db() as session:
            failed = campaigns.failures(session, me, row.id)
        if failed:
            with st.expander(f"Why messages failed or need a look ({len(failed)})"):
                st.dataframe(failed, hide_index=True, use_container_width=True)


# --- the wizard --------------------------------------------------------------------------


def wizard(campaign_id: int) -> None:
    with db() as session:
        campaign = campaigns.get_campaign(session, me, campaign_id)
        variant = campaign.variants[0]
        state = {
            "name": campaign.name,
            "status": campaign.status,
            "subject": variant.subject,
            "from_name": campaign.from_name,
            "from_email": campaign.from_email,
            "reply_to": campaign.reply_to,
            "track_opens": campaign.track_opens,
            "track_clicks": campaign.track_clicks,
            "audience": dict(campaign.audience),
            "template_id": variant.template_id,
            "variants": [(v.label, v.subject) for v in campaign.variants],
        }
    st.title(f"Campaign: {md(state['name'])}")
    if st.button("← All campaigns"):
        open_wizard(None)
        st.rerun()
    if state["status"] not in EDITABLE:
        st.info(f"This campaign is {state['status']}; it can no longer be edited.")
        return
    step = st.session_state.get("cw_step", 0)
    st.caption("  →  ".join(f"**{s}**" if i == step else s for i, s in enumerate(STEPS)))
    [setup_step, recipients_step, template_step, review_step][step](campaign_id, state)


def next_step(step: int) -> None:
    st.session_state["cw_step"] = step
    st.rerun()


def setup_step(campaign_id: int, state: dict) -> None:
    with db() as session:
        names = campaigns.variable_names(session, me)
    with st.form("setup"):
        name = st.text_input("Name", state["name"])
        subject = st.text_input("Subject", state["subject"])
        st.caption("Variables: " + ", ".join(f"`{{{{ {n} }}}}`" for n in names))
        left, right = st.columns(2)
        from_name = left.text_input("From name", state["from_name"])
        from_email = right.text_input("From address", state["from_email"])
        reply_to = st.text_input("Reply-to", state["reply_to"])
        opens = st.toggle("Track opens", state["track_opens"])
        clicks = st.toggle("Track clicks", state["track_clicks"])
        saved = st.form_submit_button("Save, next: recipients", type="primary")
    if saved:
        done = False
        with shows_errors(), db() as session:
            campaigns.update_setup(
                session,
                me,
                campaign_id,
                name=name,
                subject=subject,
                from_name=from_name,
                from_email=from_email,
                reply_to=reply_to,
                track_opens=opens,
                track_clicks=clicks,
            )
            done = True
        if done:
            next_step(1)


def recipients_step(campaign_id: int, state: dict) -> None:
    audience = state["audience"]
    with read_db() as session:
        lists = campaigns.list_choices(session, me)
        segments = campaigns.segment_choices(session, me)
    modes = ["All subscribed contacts", "Lists", "Chosen contacts"]
    if segments is not None:
        modes.insert(2, "Segment")
    current = (
        "All subscribed contacts"
        if audience.get("all")
        else "Segment"
        if audience.get("segment_id") and segments is not None
        else "Chosen contacts"
        if audience.get("contact_ids")
        else "Lists"
    )
    mode = st.radio("Who receives it", modes, index=modes.index(current), horizontal=True)
    chosen: dict = {"all": mode == "All subscribed contacts"}
    if mode == "Lists":
        by_id = {i: f"{n} ({m} members)" for i, n, m in lists}
        chosen["list_ids"] = st.multiselect(
            "Lists",
            list(by_id),
            default=[i for i in audience.get("list_ids", []) if i in by_id],
            format_func=by_id.get,
        )
    elif mode == "Segment":
        by_id = dict(segments or [])
        ids = list(by_id)
        default = audience.get("segment_id")
        chosen["segment_id"] = st.selectbox(
            "Segment",
            ids,
            index=ids.index(default) if default in ids else None,
            format_func=by_id.get,
        )
    elif mode == "Chosen contacts":
        query = st.text_input("Find contacts (email or name starts with)")
        with read_db() as session:
            found = {c.id: c.email for c in search_contacts(session, me, query, 50)}
            for cid in audience.get("contact_ids", []):
                if cid not in found:
                    from core.contacts import get_contact

                    found[cid] = get_contact(session, me, cid).email
        chosen["contact_ids"] = st.multiselect(
            "Contacts",
            list(found),
            default=audience.get("contact_ids", []),
            format_func=found.get,
        )
    with read_db() as session:
        counts = count_recipients(session, me, chosen)
    st.metric("Will receive it", f"{counts['recipients']:,}")
    st.caption(
        f"{counts['chosen']:,} chosen; unsubscribed, bounced, complained and suppressed "
        "addresses are left out, and a contact in several lists gets one copy."
    )
    back, save = st.columns(2)
    if back.button("Back"):
        next_step(0)
    if save.button("Save, next: template", type="primary"):
        done = False
        with shows_errors(), db() as session:
            campaigns.update_audience(session, me, campaign_id, chosen)
            done = True
        if done:
            next_step(2)


def preview_frame(rendered) -> None:  # noqa: ANN001
    st.markdown("**Subject:**")
    st.text(rendered.subject)
    show_email(rendered.html, height=440)


def suggest_subjects(subject: str, count: int) -> list[str]:
    with db() as session:
        return abtest.suggest_subject_variants(session, me, subject, count)


def template_step(campaign_id: int, state: dict) -> None:
    with read_db() as session:
        templates = campaigns.template_choices(session, me)
    if not templates:
        st.warning("There are no templates yet: create one on the Templates page.")
        return
    by_id = {i: f"{n} — {s}" for i, n, s in templates}
    ids = list(by_id)
    picked = st.selectbox(
        "Template",
        ids,
        index=ids.index(state["template_id"]) if state["template_id"] in ids else 0,
        format_func=by_id.get,
    )
    with read_db() as session:
        current_ab = abtest.ab_settings(session, me, campaign_id)
    ab = ab_settings_section(
        {i: n for i, n, _s in templates},
        current_ab,
        default_subject=state["subject"],
        default_template_id=picked,
        default_from_name=state["from_name"],
        suggest=suggest_subjects if ai.is_configured() else None,
        key=f"ab{campaign_id}",
    )
    back, save = st.columns(2)
    if back.button("Back"):
        next_step(1)
    if save.button("Save, next: review", type="primary"):
        done = False
        with shows_errors(), db() as session:
            campaigns.update_template(session, me, campaign_id, picked)
            if ab is not None:
                abtest.configure_ab_test(session, me, campaign_id, ab)
            elif current_ab is not None:
                abtest.remove_ab_test(session, me, campaign_id)
            done = True
        if done:
            next_step(3)
    if picked:
        with shows_errors(), db() as session:
            preview_frame(campaigns.preview(session, me, campaign_id, template_id=picked))


def review_step(campaign_id: int, state: dict) -> None:
    with db() as session:
        campaign = campaigns.get_campaign(session, me, campaign_id)
        problems = campaigns.problems(session, me, campaign)
        counts = count_recipients(session, me, state["audience"])
        sample = search_contacts(session, me, "", 20)
    sender = f"{state['from_name']} <{state['from_email']}>"
    st.markdown(
        f"**From:** {sender}  \n**Subject:** {state['subject']}  \n"
        f"**Recipients:** {counts['recipients']:,}  \n"
        f"**Tracking:** opens {'on' if state['track_opens'] else 'off'}, "
        f"clicks {'on' if state['track_clicks'] else 'off'}"
    )
    if len(campaign_variants := state.get("variants", [])) > 1:
        st.markdown(
            "**A/B test:** "
            + " · ".join(f"{label}: {subject}" for label, subject in campaign_variants)
        )
    for problem in problems:
        st.warning(f"Cannot send: {md(problem)}.")
    who = st.selectbox(
        "Preview for",
        [None, *[c.id for c in sample]],
        format_func=lambda i: (
            "a sample" if i is None else next(c.email for c in sample if c.id == i)
        ),
    )
    with shows_errors(), db() as session:
        preview_frame(campaigns.preview(session, me, campaign_id, who))
    with st.form("test_send"):
        to = st.text_input("Send a test to")
        if st.form_submit_button("Send test"):
            with shows_errors(), db() as session:
                campaigns.send_test(session, me, campaign_id, to, who)
                st.success(f"Test sent to {md(to)}.")
    back, send = st.columns(2)
    if back.button("Back"):
        next_step(2)
    sent = send.button("Send now", type="primary", disabled=bool(problems))
    if sent and act(lambda s: campaigns.send_now(s, me, campaign_id), rerun=False):
        open_wizard(None)
        flash(f"“{state['name']}” is on its way.")
        st.rerun()
    st.subheader("Or schedule it")
    browser_zone = getattr(st.context, "timezone", None)
    default_zone = st.session_state.get("mw_timezone") or browser_zone or "UTC"
    if default_zone not in ZONES:
        default_zone = "UTC"
    cols = st.columns(3)
    day = cols[0].date_input("Date", date.today() + timedelta(days=1))
    at = cols[1].time_input("Time", time(9, 0))
    zone = cols[2].selectbox("Time zone", ZONES, index=ZONES.index(default_zone))
    if st.button("Schedule", disabled=bool(problems)):
        st.session_state["mw_timezone"] = zone
        when = datetime.combine(day, at, ZoneInfo(zone))
        if act(lambda s: campaigns.schedule(s, me, campaign_id, when), rerun=False):
            open_wizard(None)
            flash(f"“{state['name']}” is scheduled for {when:%Y-%m-%d %H:%M} {zone}.")
            st.rerun()


editing = st.session_state.get("cw_campaign")
if editing is None:
    campaign_list()
else:
    with shows_errors():
        wizard(editing)
