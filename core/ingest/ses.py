"""SES event notifications: parsing SES's JSON (delivery, bounce, complaint, open, click,
reject, ...) and matching each record to its ledger row."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    select,
)

from core.infra.clock import now
from core.ingest.store import LedgerRow, NewEvent, _is_pg, _key, _time, classify_open
from core.models import Contact, Message

log = logging.getLogger(__name__)

# Message tags the sender may set (SES EmailTags), by what they carry.
TAG_MESSAGE = ("mw_message_id", "message_id", "mw_message")


TAG_WORKSPACE = ("mw_workspace_id", "workspace_id", "mw_workspace")


TAG_CAMPAIGN = ("campaign_id", "mw_campaign_id")


# SES event names (event publishing `eventType` and identity `notificationType`).
SES_TYPES = {
    "Send": "sent",
    "Delivery": "delivered",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "rendering_failure",
    "RenderingFailure": "rendering_failure",
    "DeliveryDelay": "delivery_delay",
    "Subscription": "subscription",
}


@dataclass
class SesRecord:
    """One SES event for one recipient, before it is matched to the ledger."""

    type: str
    provider_id: str
    recipient: str
    occurred_at: datetime
    dedupe_key: str
    tags: dict[str, list[str]]
    bounce_type: str | None = None
    url: str | None = None
    user_agent: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def parse_ses_event(text: str, received: datetime | None = None) -> list[SesRecord]:
    """The per-recipient records of one SES event (event publishing or notification form).

    An unknown or unreadable event gives no records (it is logged)."""
    try:
        body = json.loads(text)
    except ValueError:
        log.warning("SNS message is not JSON; ignored")
        return []
    if not isinstance(body, dict):
        return []
    name = body.get("eventType") or body.get("notificationType")
    kind = SES_TYPES.get(str(name))
    mail = body.get("mail") or {}
    provider_id = mail.get("messageId")
    if kind is None or not isinstance(mail, dict) or not provider_id:
        log.info("SES event %r without a known type or message id; ignored", name)
        return []
    received = received or now()
    tags = mail.get("tags") or {}
    destination = [str(a) for a in mail.get("destination") or []]

    def rec(recipient: str, at: Any, discriminator: Any, **extra: Any) -> SesRecord:
        recipient = recipient.strip().lower()
        data = {"ses_message_id": provider_id, "recipient": recipient, **extra.pop("data", {})}
        return SesRecord(
            type=kind,
            provider_id=provider_id,
            recipient=recipient,
            occurred_at=_time(at, received),
            # SES message ids start with a time stamp: keys led by them land near each
            # other in the unique index, so a batch dirties few index pages.
            dedupe_key=f"ses:{provider_id[:100]}:{kind}:{_key(recipient, discriminator)[:32]}",
            tags=tags if isinstance(tags, dict) else {},
            data=data,
            **extra,
        )

    records: list[SesRecord] = []
    if kind == "sent":
        at = mail.get("timestamp")
        records = [rec(r, at, "") for r in destination]
    elif kind == "delivered":
        d = body.get("delivery") or {}
        at = d.get("timestamp")
        smtp = {"smtp_response": d.get("smtpResponse", "")}
        records = [rec(r, at, "", data=smtp) for r in d.get("recipients") or destination]
    elif kind == "bounce":
        b = body.get("bounce") or {}
        hard = b.get("bounceType") == "Permanent"
        for r in b.get("bouncedRecipients") or []:
            records.append(
                rec(
                    r.get("emailAddress", ""),
                    b.get("timestamp"),
                    b.get("feedbackId", b.get("timestamp")),
                    bounce_type="hard" if hard else "soft",
                    data={
                        "bounce_type": b.get("bounceType"),
                        "bounce_subtype": b.get("bounceSubType"),
                        "status": r.get("status"),
                        "diagnostic": r.get("diagnosticCode", ""),
                    },
                )
            )
    elif kind == "complaint":
        c = body.get("complaint") or {}
        for r in c.get("complainedRecipients") or []:
            records.append(
                rec(
                    r.get("emailAddress", ""),
                    c.get("timestamp"),
                    c.get("feedbackId", c.get("timestamp")),
                    data={
                        "feedback_type": c.get("complaintFeedbackType", ""),
                        "subtype": c.get("complaintSubType"),
                    },
                )
            )
    elif kind == "reject":
        reason = (body.get("reject") or {}).get("reason", "rejected")
        records = [
            rec(r, mail.get("timestamp"), "", error=f"SES rejected it: {reason}")
            for r in destination
        ]
    elif kind == "rendering_failure":
        f = body.get("failure") or {}
        reason = f.get("errorMessage", "rendering failure")
        records = [
            rec(r, mail.get("timestamp"), "", error=f"SES could not render it: {reason}")
            for r in destination
        ]
    elif kind in ("open", "click"):
        o = body.get(kind) or {}
        link = o.get("link") if kind == "click" else None
        records = [
            rec(
                r,
                o.get("timestamp"),
                (o.get("timestamp"), link),
                url=link,
                user_agent=o.get("userAgent"),
                data={"ip": o.get("ipAddress")},
            )
            for r in destination
        ]
    elif kind == "delivery_delay":
        d = body.get("deliveryDelay") or {}
        for r in d.get("delayedRecipients") or []:
            records.append(
                rec(
                    r.get("emailAddress", ""),
                    d.get("timestamp"),
                    d.get("timestamp"),
                    data={"delay_type": d.get("delayType"), "diagnostic": r.get("diagnosticCode")},
                )
            )
    elif kind == "subscription":
        s = body.get("subscription") or {}
        prefs = s.get("newTopicPreferences") or {}
        records = [
            rec(
                r,
                s.get("timestamp"),
                s.get("timestamp"),
                data={
                    "contact_list": s.get("contactList"),
                    "unsubscribe_all": bool(prefs.get("unsubscribeAll")),
                    "topics": prefs.get("topicSubscriptionStatus"),
                },
            )
            for r in destination
        ]
    return [r for r in records if r.recipient]


def _tag(tags: dict[str, list[str]], names: Iterable[str]) -> int | None:
    for name in names:
        # SES sends a list per tag; a bare string is read as well.
        value: list[str] | str | None = tags.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return None


_MESSAGE = Message.__table__.c


LEDGER_COLUMNS = [_MESSAGE[name] for name in LedgerRow.__dataclass_fields__]


# Built once with an expanding parameter: `in_(list)` would coerce every value per call.
LEDGER_BY_PROVIDER = select(*LEDGER_COLUMNS).where(
    _MESSAGE.provider_message_id.in_(bindparam("ids", expanding=True))
)


LEDGER_BY_ID = select(*LEDGER_COLUMNS).where(_MESSAGE.id.in_(bindparam("ids", expanding=True)))


# PostgreSQL: `= ANY(array)` keeps one statement text for any number of ids, and as
# driver SQL with a binary array it skips the per-element bind processing of ARRAY(String).
PG_LEDGER_BY_PROVIDER = (
    f"SELECT {', '.join(LedgerRow.__dataclass_fields__)} FROM message "
    "WHERE provider_message_id = ANY(%(ids)b::varchar[])"
)


@dataclass
class _Ledger:
    by_provider: dict[str, list[LedgerRow]]
    by_id: dict[int, LedgerRow]


def _ledger_rows(conn: Connection, records: list[SesRecord]) -> _Ledger:
    ledger = _Ledger({}, {})
    provider_ids = sorted({r.provider_id for r in records})
    for start in range(0, len(provider_ids), 500):
        chunk = provider_ids[start : start + 500]
        if _is_pg(conn):
            result = conn.exec_driver_sql(PG_LEDGER_BY_PROVIDER, {"ids": chunk})
        else:
            result = conn.execute(LEDGER_BY_PROVIDER, {"ids": chunk})
        for row in result:
            m = LedgerRow(*row)
            ledger.by_provider.setdefault(m.provider_message_id or "", []).append(m)
            ledger.by_id[m.id] = m
    tagged = {
        t
        for r in records
        if r.provider_id not in ledger.by_provider and (t := _tag(r.tags, TAG_MESSAGE)) is not None
    }
    if tagged:
        for row in conn.execute(LEDGER_BY_ID, {"ids": sorted(tagged)}):
            ledger.by_id[row.id] = LedgerRow(*row)
    return ledger


def _match(conn: Connection, ledger: _Ledger, r: SesRecord) -> NewEvent | None:
    rows = ledger.by_provider.get(r.provider_id, [])
    if not rows:
        tagged = _tag(r.tags, TAG_MESSAGE)
        row = ledger.by_id.get(tagged) if tagged is not None else None
        workspace_tag = _tag(r.tags, TAG_WORKSPACE)
        campaign_tag = _tag(r.tags, TAG_CAMPAIGN)
        if (
            row is None
            or (workspace_tag is not None and workspace_tag != row.workspace_id)
            or (campaign_tag is not None and campaign_tag != row.campaign_id)
        ):
            return None
        rows = [row]
    message = next((m for m in rows if m.email.lower() == r.recipient), None)
    contact_id = message.contact_id if message is not None else None
    if message is None:
        # The recipient is not the ledger's address (several recipients, or a rewrite):
        # attach to the message and find the contact by address in its workspace.
        message = rows[0]
        contact_id = conn.scalar(
            select(Contact.id).where(
                Contact.workspace_id == message.workspace_id, Contact.email == r.recipient
            )
        )
    is_machine, reason = False, None
    if r.type in ("open", "click"):
        is_machine, reason = classify_open(r.user_agent, message.sent_at, r.occurred_at)
        if reason:
            r.data["machine_reason"] = reason
    return NewEvent(
        workspace_id=message.workspace_id,
        type=r.type,
        dedupe_key=r.dedupe_key,
        occurred_at=r.occurred_at,
        source="ses",
        message=message,
        contact_id=contact_id,
        email=r.recipient,
        url=r.url,
        bounce_type=r.bounce_type,
        user_agent=r.user_agent,
        is_machine=is_machine,
        data=r.data,
        error=r.error,
    )
