"""The campaign wizard: setup, recipients, template (with the A/B section) and review.

Each step saves the draft before moving on; the step and the campaign being edited live in
session state (`open_wizard`), so the Campaigns page shows either its list or this wizard.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import streamlit as st

from core import abtest
from core.campaigns import service as campaigns
from core.campaigns import waves
from core.campaigns.audience import (
    count_recipients,
    first_recipient,
    picked_contacts,
    sample_recipients,
)
from core.contacts import sunset
from core.contacts.service import search_contacts
from core.content import ai
from core.content.rendering import Rendered
from core.infra import clock
from core.models import Contact
from core.models.statuses import EDITABLE
from core.sending import pipeline as sending
from ui.abtest import ab_review_section, ab_settings_section
from ui.actions import act, arm, ask_first, flash
from ui.deliverability import standing_warning
from ui.preview import show_email
from ui.state import actor, db, read_db, shows_errors
from ui.text import md
from ui.waves import plan_sentence

STEPS = ["1. Setup", "2. Recipients", "3. Template", "4. Review"]
ZONES = sorted(available_timezones())
PICKER_RESULTS = 20


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
            # A resend's proposed time (core.campaigns.resend), the review's default.
            "scheduled_at": campaign.scheduled_at,
            "local_send_time": campaign.local_send_time,
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


EVERYONE = "All subscribed contacts"
CHOSEN = "Lists, a segment or specific contacts"


def _resend_mode(parent_name: str) -> str:
    return f"Non-openers of “{parent_name}”"


def recipients_step(campaign_id: int, state: dict) -> None:
    audience = state["audience"]
    parent_name = None
    with read_db() as session:
        lists = campaigns.list_choices(session, actor())
        segments = campaigns.segment_choices(session, actor())
        builtin = sunset.builtin_segment_id(session, actor().workspace_id)
        if audience.get("resend_of"):
            parent_name = campaigns.get_campaign(session, actor(), audience["resend_of"]).name
    modes = [EVERYONE, CHOSEN]
    index = 0 if audience.get("all") else 1
    if parent_name is not None:
        modes.append(_resend_mode(parent_name))
        index = 2
    mode = st.radio(
        "Who receives it",
        modes,
        index=index,
        horizontal=True,
        help="Lists, the segment and the specific contacts add up; a contact in several of "
        "them gets one copy.",
    )
    chosen: dict = {"all": mode == EVERYONE}
    if parent_name is not None and mode == modes[2]:
        chosen["resend_of"] = audience["resend_of"]
        st.caption(
            "Who received it (sent, not bounced) and neither opened it as a person nor "
            "clicked, minus anyone unsubscribed or suppressed since; drawn when it starts, so "
            "whoever opens the first mail meanwhile is left out too."
        )
    if mode == CHOSEN:
        left, right = st.columns(2)
        by_id = {i: f"{n} ({m:,} members)" for i, n, m in lists}
        chosen["list_ids"] = left.multiselect(
            "Lists",
            list(by_id),
            default=[i for i in audience.get("list_ids", []) if i in by_id],
            format_func=by_id.get,
            placeholder="No list",
        )
        if segments is not None:
            names = dict(segments)
            default = audience.get("segment_id")
            chosen["segment_id"] = right.selectbox(
                "Segment",
                list(names),
                index=list(names).index(default) if default in names else None,
                format_func=names.get,
                placeholder="No segment",
            )
        chosen["contact_ids"] = contact_picker(campaign_id, audience.get("contact_ids", []))
    # Inactive contacts (sunset policy) are left out unless included; a campaign to the
    # built-in segment of them includes them.
    inactive_key = f"cw_inactive_{campaign_id}"
    to_builtin = builtin is not None and chosen.get("segment_id") == builtin
    default = bool(audience.get("include_inactive")) or to_builtin
    chosen["include_inactive"] = bool(st.session_state.get(inactive_key, default)) or to_builtin
    with read_db() as session:
        counts = count_recipients(session, actor(), chosen)
    st.metric("Will receive it", f"{counts['recipients']:,}")
    st.caption(
        f"{counts['chosen']:,} chosen; unsubscribed, bounced, complained and suppressed "
        "addresses are left out, and a contact in more than one list, the segment or the "
        "specific contacts gets one copy."
    )
    if counts["inactive"] or chosen["include_inactive"]:
        n = counts["inactive"]
        if chosen["include_inactive"]:
            st.caption(f"{n:,} inactive contacts (sunset policy) are included.")
        else:
            st.caption(
                f"{n:,} inactive contact{'s' if n != 1 else ''} left out (sunset policy: no "
                "human open or click for many campaigns; Settings → Inactive contacts)."
            )
        st.checkbox(
            "Include inactive contacts",
            value=default,
            key=inactive_key,
            disabled=to_builtin,
            help="The built-in segment of inactive contacts always includes them."
            if to_builtin
            else "For a re-engagement campaign, say. Mail nobody reads costs reputation.",
        )
    back, save = st.columns(2)
    if back.button("Back"):
        st.session_state.pop(f"cw_picks_{campaign_id}", None)
        next_step(0)
    if save.button("Save, next: template", type="primary"):
        done = False
        with shows_errors(), db() as session:
            campaigns.update_audience(session, actor(), campaign_id, chosen)
            done = True
        if done:
            st.session_state.pop(f"cw_picks_{campaign_id}", None)
            st.session_state.pop(inactive_key, None)
            next_step(2)


def _contact_label(contact: Contact) -> str:
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    label = f"{name} <{contact.email}>" if name else contact.email
    if contact.status != "subscribed":
        label += f" ({contact.status}: will not receive it)"
    return label


def contact_picker(campaign_id: int, saved: list[int]) -> list[int]:
    """Specific contacts: search by email or name, pick from the results; the picks stay
    (as removable chips) while the search changes."""
    picks_key = f"cw_picks_{campaign_id}"
    picks: list[int] = st.session_state.setdefault(picks_key, list(saved))
    st.markdown("**Specific contacts**")
    query = st.text_input(
        "Find contacts",
        placeholder="Email address or name (starts with)",
        key=f"cw_find_{campaign_id}",
    )
    with read_db() as session:
        labels = {c.id: _contact_label(c) for c in picked_contacts(session, actor(), picks)}
        found = search_contacts(session, actor(), query, PICKER_RESULTS) if query.strip() else []
        for contact in found:
            labels.setdefault(contact.id, _contact_label(contact))
    if len(found) == PICKER_RESULTS:
        st.caption(f"The first {PICKER_RESULTS} found: open the list below, or type more.")
    elif found:
        st.caption(f"{len(found)} found: open the list below to pick.")
    elif query.strip():
        st.caption("Nobody found: try the start of an address, a first name or a last name.")
    # The widget's identity follows its options, so it is rebuilt with the picks as its value
    # whenever the search changes: picks made under an earlier search stay.
    chosen = st.multiselect(
        "Chosen contacts",
        list(labels),
        default=[i for i in picks if i in labels],
        format_func=lambda i: labels[i],
        placeholder="Search above, then pick",
    )
    if chosen != picks:
        st.session_state[picks_key] = list(chosen)
    return list(chosen)


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
        recipients = count_recipients(session, actor(), state["audience"])["recipients"]
    ab = ab_settings_section(
        {i: n for i, n, _s in templates},
        current_ab,
        default_subject=state["subject"],
        default_template_id=picked,
        default_from_name=state["from_name"],
        suggest=suggest_subjects if ai.is_configured() else None,
        key=f"ab{campaign_id}",
        recipients=recipients,
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
        with shows_errors(), read_db() as session:
            # For the first recipient, as the review shows it (a placeholder when none).
            first = first_recipient(session, actor(), state["audience"])
            show_rendered(
                campaigns.preview(
                    session, actor(), campaign_id, first.id if first else None, template_id=picked
                )
            )


def review_step(campaign_id: int, state: dict) -> None:
    with read_db() as session:
        campaign = campaigns.get_campaign(session, actor(), campaign_id)
        problems = campaigns.problems(session, actor(), campaign)
        counts = count_recipients(session, actor(), state["audience"])
        sample = sample_recipients(session, actor(), state["audience"], 20)
        review = abtest.ab_review(session, actor(), campaign_id)
    sender = f"{state['from_name']} <{state['from_email']}>"
    lines = [f"**From:** {md(sender)}"]
    if review is None:
        lines.append(f"**Subject:** {md(state['subject'])}")
    lines += [
        f"**Recipients:** {counts['recipients']:,}",
        f"**Tracking:** opens {'on' if state['track_opens'] else 'off'}, "
        f"clicks {'on' if state['track_clicks'] else 'off'}",
    ]
    st.markdown("  \n".join(lines))
    for problem in problems:
        st.warning(f"Cannot send: {md(problem)}.")
    # The workspace's last 30 days against SES's review levels (core enforces the same).
    override = False
    level = standing_warning(actor())
    if level == "over":
        if actor().role == "owner":
            override = st.checkbox(
                "Send anyway: I am an owner and override the guard (recorded with my name)",
                key=f"cw_guard_override_{campaign_id}",
            )
        else:
            st.caption("Ask an owner to send this campaign.")
    held = level == "over" and not override
    variant_id = None
    if review is not None:
        ab_review_section(review)
        by_label = {row["label"]: row["id"] for row in review["variants"]}
        label = st.radio(
            "Preview variant", list(by_label), horizontal=True, format_func="Variant {}".format
        )
        variant_id = by_label[label]
    by_id = {c.id: c.email for c in sample}
    who = st.selectbox(
        "Preview for",
        list(by_id) or [None],
        format_func=lambda i: "a sample contact (nobody is chosen yet)" if i is None else by_id[i],
    )
    with shows_errors(), read_db() as session:
        show_rendered(campaigns.preview(session, actor(), campaign_id, who, variant_id=variant_id))
    with st.form("test_send"):
        to = st.text_input("Send a test to")
        if st.form_submit_button("Send test"):
            with shows_errors(), db() as session:
                sending.send_test(session, actor(), campaign_id, to, who)
                st.success(f"Test sent to {md(to)}.")
    local_time = local_time_option(campaign_id, state)
    back, send = st.columns(2)
    if back.button("Back"):
        next_step(2)
    if send.button("Send now", type="primary", disabled=bool(problems) or held):
        arm(f"cw_confirm_send_{campaign_id}")
    recipients = counts["recipients"]
    confirmed = ask_first(
        f"cw_confirm_send_{campaign_id}",
        f"Send “{state['name']}” to {recipients:,} recipient{'s' if recipients != 1 else ''} "
        + (f"at {local_time} in each one's time zone, starting now? " if local_time else "now? ")
        + "Once it starts, mail that has left cannot be called back.",
        "Yes, send now",
    )
    if confirmed and act(
        lambda s: campaigns.send_now(
            s, actor(), campaign_id, override_guard=override, local_time=local_time
        ),
        rerun=False,
    ):
        open_wizard(None)
        flash(
            f"“{state['name']}” goes out at {local_time} in each contact's time zone."
            if local_time
            else f"“{state['name']}” is on its way."
        )
        st.rerun()
    st.subheader("Or schedule it")
    browser_zone = getattr(st.context, "timezone", None)
    default_zone = st.session_state.get("mw_timezone") or browser_zone or "UTC"
    if default_zone not in ZONES:
        default_zone = "UTC"
    day, at = date.today() + timedelta(days=1), time(9, 0)
    if state.get("scheduled_at") is not None:  # a resend's proposed time
        proposed = clock.as_utc(state["scheduled_at"]).astimezone(ZoneInfo(default_zone))
        day, at = proposed.date(), proposed.time().replace(second=0, microsecond=0)
    if local_time:
        st.caption(
            f"The waves start at this moment: each contact gets it at the first {local_time} "
            "in their zone from then on."
        )
    cols = st.columns(3)
    day = cols[0].date_input("Date", day)
    at = cols[1].time_input("Time", at)
    zone = cols[2].selectbox("Time zone", ZONES, index=ZONES.index(default_zone))
    when = datetime.combine(day, at, ZoneInfo(zone))
    if local_time and when > clock.now():
        with read_db() as session:
            plan = waves.plan_waves(session, actor(), state["audience"], local_time, when)
        st.caption(f"Scheduled: {plan_sentence(plan)}")
    if st.button("Schedule", disabled=bool(problems) or held):
        st.session_state["mw_timezone"] = zone
        if act(
            lambda s: campaigns.schedule(
                s, actor(), campaign_id, when, override_guard=override, local_time=local_time
            ),
            rerun=False,
        ):
            open_wizard(None)
            flash(
                f"“{state['name']}” is scheduled for {when:%Y-%m-%d %H:%M} {zone}"
                + (f", then at {local_time} in each contact's time zone." if local_time else ".")
            )
            st.rerun()


def local_time_option(campaign_id: int, state: dict) -> str | None:
    """ "Send at this time in each contact's time zone": the time ("09:00") when chosen, and
    how many contacts fall in how many zones, with the first and last waves from now."""
    chosen = st.toggle(
        "Send at this time in each contact's time zone",
        value=bool(state.get("local_send_time")),
        key=f"cw_local_{campaign_id}",
        help="Time-zone waves: each contact gets it when their own clock shows this time "
        "(contacts without a time zone: the workspace's, in Settings), all within 24 hours "
        "of the start.",
    )
    if not chosen:
        return None
    saved = state.get("local_send_time") or "09:00"
    hour, minute = (int(part) for part in saved.split(":"))
    at = st.time_input(
        "Time in each contact's zone", time(hour, minute), key=f"cw_local_at_{campaign_id}"
    )
    local_time = waves.parse_local_time(at)
    with read_db() as session:
        plan = waves.plan_waves(session, actor(), state["audience"], local_time)
    st.info(f"Sent now: {plan_sentence(plan)}", icon=":material/schedule:")
    return local_time
