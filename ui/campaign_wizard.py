"""The campaign wizard: setup, recipients, template (with the A/B section) and review.

Each step saves the draft before moving on; the step and the campaign being edited live in
session state (`open_wizard`), so the Campaigns page shows either its list or this wizard.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import streamlit as st

from core import abtest
from core.campaigns import service as campaigns
from core.campaigns.audience import count_recipients
from core.contacts.service import search_contacts
from core.content import ai
from core.content.rendering import Rendered
from core.models.statuses import EDITABLE
from core.sending import pipeline as sending
from ui.abtest import ab_settings_section
from ui.actions import act, arm, ask_first, flash
from ui.preview import show_email
from ui.state import actor, db, read_db, shows_errors
from ui.text import md

STEPS = ["1. Setup", "2. Recipients", "3. Template", "4. Review"]
ZONES = sorted(available_timezones())


def open_wizard(campaign_id: int | None, step: int = 0) -> None:
    """Show the wizard for `campaign_id` at `step` on the next run (None: the list)."""
    st.session_state["cw_campaign"] = campaign_id
    st.session_state["cw_step"] = step


def wizard(campaign_id: int) -> None:
    with db() as session:
        campaign = campaigns.get_campaign(session, actor(), campaign_id)
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
        names = campaigns.variable_names(session, actor())
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
                actor(),
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
        lists = campaigns.list_choices(session, actor())
        segments = campaigns.segment_choices(session, actor())
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
            found = {c.id: c.email for c in search_contacts(session, actor(), query, 50)}
            for cid in audience.get("contact_ids", []):
                if cid not in found:
                    from core.contacts.service import get_contact

                    found[cid] = get_contact(session, actor(), cid).email
        chosen["contact_ids"] = st.multiselect(
            "Contacts",
            list(found),
            default=audience.get("contact_ids", []),
            format_func=found.get,
        )
    with read_db() as session:
        counts = count_recipients(session, actor(), chosen)
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
            campaigns.update_audience(session, actor(), campaign_id, chosen)
            done = True
        if done:
            next_step(2)


def show_rendered(rendered: Rendered) -> None:
    st.markdown("**Subject:**")
    st.text(rendered.subject)
    show_email(rendered.html, height=440)


def suggest_subjects(subject: str, count: int) -> list[str]:
    with db() as session:
        return abtest.suggest_subject_variants(session, actor(), subject, count)


def template_step(campaign_id: int, state: dict) -> None:
    with read_db() as session:
        templates = campaigns.template_choices(session, actor())
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
        current_ab = abtest.ab_settings(session, actor(), campaign_id)
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
            campaigns.update_template(session, actor(), campaign_id, picked)
            if ab is not None:
                abtest.configure_ab_test(session, actor(), campaign_id, ab)
            elif current_ab is not None:
                abtest.remove_ab_test(session, actor(), campaign_id)
            done = True
        if done:
            next_step(3)
    if picked:
        with shows_errors(), db() as session:
            show_rendered(campaigns.preview(session, actor(), campaign_id, template_id=picked))


def review_step(campaign_id: int, state: dict) -> None:
    with db() as session:
        campaign = campaigns.get_campaign(session, actor(), campaign_id)
        problems = campaigns.problems(session, actor(), campaign)
        counts = count_recipients(session, actor(), state["audience"])
        sample = search_contacts(session, actor(), "", 20)
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
        show_rendered(campaigns.preview(session, actor(), campaign_id, who))
    with st.form("test_send"):
        to = st.text_input("Send a test to")
        if st.form_submit_button("Send test"):
            with shows_errors(), db() as session:
                sending.send_test(session, actor(), campaign_id, to, who)
                st.success(f"Test sent to {md(to)}.")
    back, send = st.columns(2)
    if back.button("Back"):
        next_step(2)
    if send.button("Send now", type="primary", disabled=bool(problems)):
        arm(f"cw_confirm_send_{campaign_id}")
    recipients = counts["recipients"]
    confirmed = ask_first(
        f"cw_confirm_send_{campaign_id}",
        f"Send “{state['name']}” to {recipients:,} recipient{'s' if recipients != 1 else ''} "
        "now? Once it starts, mail that has left cannot be called back.",
        "Yes, send now",
    )
    if confirmed and act(lambda s: campaigns.send_now(s, actor(), campaign_id), rerun=False):
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
        if act(lambda s: campaigns.schedule(s, actor(), campaign_id, when), rerun=False):
            open_wizard(None)
            flash(f"“{state['name']}” is scheduled for {when:%Y-%m-%d %H:%M} {zone}.")
            st.rerun()
