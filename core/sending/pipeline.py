"""The sending pipeline: start, batches, transports, and recovery after a lost worker.

The ledger (`message`, unique per campaign and contact) is the cursor. A batch task owns
an id range of one campaign and works through it in chunks:

1. wait for the chunk's send slots (core.mail.ratelimit, shared by all workers);
2. claim: one UPDATE moves the chunk from queued/uncertain to "sending" (committed), so
   two tasks that got the same range never both send a row;
3. render and send each message (the template is compiled once per campaign);
4. record the outcomes with one UPDATE per kind (committed) before the next chunk.

The outbox overwrites a file named by the message id, so it can resend safely: its chunks
are large and a lost worker's "sending" rows go back to queued. SES and SMTP cannot be
asked whether a message went out, so there a chunk is one message: at most one per worker
process is ever unrecorded, and after a crash it is sent again and marked as a possible
duplicate ("uncertain"), so the report can count it.

About 710 lines on purpose: the claim, send and record steps and the recovery that undoes
them read as one state machine over the ledger.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formatdate
from typing import Any

from sqlalchemy import String, cast, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.auth import normalize_email
from core.campaigns import audience, waves
from core.campaigns import service as campaigns
from core.campaigns.dispatch import (
    BATCH_TASK,
    dispatch_batches,
    dispatch_due_waves,
    is_due,
    next_wave,
)
from core.content.rendering import (
    Rendered,
    TemplateProblem,
    compile_template,
)
from core.infra import clock, jobs, logs, metrics
from core.infra.config import settings
from core.infra.db import referenced, rowcount
from core.infra.errors import (
    PermanentSendError,
    ThrottledSendError,
    TransientSendError,
    TransportMisconfigured,
    ValidationFailed,
)
from core.infra.permissions import Actor
from core.ingest import tracking
from core.mail.ratelimit import RateLimiter, acquire
from core.mail.transports import Transport
from core.models import (
    AuditLog,
    Campaign,
    Contact,
    Event,
    Message,
    Template,
    Workspace,
)
from core.models.statuses import (
    NOT_FINAL,
    PENDING,
    POSSIBLE_DUPLICATE,
    CampaignStatus,
    MessageStatus,
)
from core.sending.compose import (
    CONTACT_FIELDS,
    IDEMPOTENT_TRANSPORTS,
    Composer,
    get_transport_cached,
    limiter,
)

log = logging.getLogger(__name__)


def _snapshot_content(session: Session, campaign: Campaign) -> None:
    """Copy each variant's template into the variant, so later edits change nothing."""
    for variant in campaign.variants:
        if variant.html:
            continue
        template = session.get(Template, variant.template_id) if variant.template_id else None
        if template is None:
            continue
        variant.html = template.html
        variant.text = template.text
        if not variant.subject:
            variant.subject = template.subject


def start_campaign(sessions: sessionmaker[Session], campaign_id: int) -> bool:
    """Snapshot the audience and fan out batches, once; False if it was not due to start.

    Runs its own transactions, so it takes a session factory. A second delivery of the
    start task finds the campaign no longer scheduled."""
    with sessions() as session, logs.bound(campaign_id=campaign_id):
        return _start_campaign(session, campaign_id)


def _start_campaign(session: Session, campaign_id: int) -> bool:
    """`start_campaign`'s work; commits the session its caller opened from a factory."""
    won = rowcount(
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SCHEDULED)
            .values(status=CampaignStatus.SENDING, started_at=clock.now(), error="")
        )
    )
    if not won:
        session.rollback()
        return False
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None  # the UPDATE above has just matched it
    session.refresh(campaign)
    _snapshot_content(session, campaign)
    try:
        for v in campaign.variants:
            compile_template(v.subject, v.html, v.text)
    except TemplateProblem as exc:
        return _fail(session, campaign, f"The template does not compile: {exc}")
    try:
        with session.begin_nested():  # a refused A/B split leaves no ledger rows behind
            count = audience.snapshot(session, campaign)
            # A time-zone campaign: each zone's rows get their wave's time (one UPDATE each).
            waves.date_ledger(session, campaign)
    except ValidationFailed as exc:
        return _fail(session, campaign, str(exc))
    # A re-run adds no rows to a ledger that is already there.
    total = count or session.scalar(select(exists().where(Message.campaign_id == campaign.id)))
    if not total:
        return _fail(
            session, campaign, "No recipients: everyone chosen is unsubscribed or suppressed."
        )
    log.info("campaign %s: %s recipients in the ledger", campaign_id, count)
    dispatch_batches(session, campaign_id)
    session.commit()
    return True


def _fail(session: Session, campaign: Campaign, reason: str) -> bool:
    """Fail the campaign and commit (inside `_start_campaign`, a factory's session)."""
    campaign.status = CampaignStatus.FAILED
    campaign.error = reason
    campaign.finished_at = clock.now()
    session.commit()
    return False


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    requeued: int = 0
    stopped: str = ""
    throttled: int = 0
    errors: list[str] = field(default_factory=list)


def _rows(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """The claimed messages with their contact's fields, in one query."""
    columns = [getattr(Contact, name) for name in CONTACT_FIELDS if name != "email"]
    result = session.execute(
        select(Message.id, Message.contact_id, Message.email, Message.variant_id, *columns)
        .join(Contact, Contact.id == Message.contact_id)
        .where(Message.id.in_(ids))
        .order_by(Message.id)
    )
    rows = []
    for r in result:
        row = dict(r._mapping)
        row["message_id"] = row.pop("id")
        rows.append(row)
    return rows


def _claim(session: Session, campaign_id: int, ids: list[int]) -> tuple[list[int], set[int]]:
    """Move `ids` that are still pending to "sending" while their campaign is sending (a
    pause committed by the deliverability guard or a person stops the next claim, even one
    that read the status just before); (claimed ids, were uncertain)."""
    before = dict(
        session.execute(
            select(Message.id, Message.status).where(
                Message.id.in_(ids), Message.status.in_(PENDING)
            )
        ).all()
    )
    claimed = session.scalars(
        update(Message)
        .where(
            Message.id.in_(ids),
            Message.status.in_(PENDING),
            is_due(clock.now()),  # a later time-zone wave's row waits for its moment
            exists().where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING),
        )
        .values(status=MessageStatus.SENDING, attempts=Message.attempts + 1, updated_at=clock.now())
        .returning(Message.id)
    ).all()
    return sorted(claimed), {i for i in claimed if before.get(i) == "uncertain"}


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(Event).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)


def _record(
    session: Session,
    campaign: Campaign,
    sent: list[tuple[int, int, str]],
    failed: list[tuple[int, str]],
    requeue: list[int],
    uncertain: set[int],
    transport_name: str,
) -> None:
    """Outcomes of one chunk, with as few statements as the outcomes allow."""
    now = clock.now()
    plain = [mid for mid, _, _ in sent if mid not in uncertain]
    dupes = [mid for mid, _, _ in sent if mid in uncertain]
    if transport_name in IDEMPOTENT_TRANSPORTS:
        # The outbox's id is derived from the ledger id: one UPDATE for the whole chunk.
        provider = literal(f"{transport_name}-") + cast(Message.id, String)
        ids = plain + dupes
        if ids:
            session.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .values(
                    status=MessageStatus.SENT,
                    sent_at=now,
                    updated_at=now,
                    error="",
                    provider_message_id=provider,
                )
            )
    else:
        for mid, _, provider_id in sent:
            error = (
                f"{POSSIBLE_DUPLICATE}: the worker was lost while this message was in flight"
                if mid in uncertain
                else ""
            )
            session.execute(
                update(Message)
                .where(Message.id == mid)
                .values(
                    status=MessageStatus.SENT,
                    sent_at=now,
                    updated_at=now,
                    error=error,
                    provider_message_id=provider_id,
                )
            )
    for mid, reason in failed:
        session.execute(
            update(Message)
            .where(Message.id == mid)
            .values(status=MessageStatus.FAILED, updated_at=now, error=reason[:2000])
        )
    if requeue:
        session.execute(
            update(Message)
            .where(Message.id.in_(requeue))
            .values(status=MessageStatus.QUEUED, updated_at=now)
        )
    _insert_events(
        session,
        [
            {
                "workspace_id": campaign.workspace_id,
                "campaign_id": campaign.id,
                "message_id": mid,
                "contact_id": contact_id,
                "type": "sent",
                "occurred_at": now,
                "source": "own",
                "data": {},
                "dedupe_key": f"sent:{mid}",
                "is_machine": False,
            }
            for mid, contact_id, _ in sent
        ],
    )


def _deliver(
    transport: Transport,
    composer: Composer,
    rows: list[dict[str, Any]],
    result: BatchResult,
    lim: RateLimiter,
    rate_key: str,
) -> tuple[list[tuple[int, int, str]], list[tuple[int, str]], list[int], str]:
    """Render and send `rows`; (sent, failed, requeue, misconfiguration or "")."""
    sent: list[tuple[int, int, str]] = []
    failed: list[tuple[int, str]] = []
    date = formatdate(usegmt=True)
    for index, row in enumerate(rows):
        mid = row["message_id"]
        unsubscribe = tracking.unsubscribe_url(composer.workspace_id, row["contact_id"], mid)
        try:
            rendered = composer.render(row, unsubscribe)
        except TemplateProblem as exc:
            failed.append((mid, str(exc)))
            continue
        try:
            raw = composer.build(
                message_id=mid,
                to=row["email"],
                rendered=rendered,
                unsubscribe=unsubscribe,
                date=date,
                variant_id=row["variant_id"],
            )
        except ValidationFailed as exc:  # an address no transport can send to
            failed.append((mid, str(exc)))
            continue
        outgoing = composer.outgoing(raw, mid, row["email"])
        backoff = 0.5
        transient = 0
        throttled = 0
        while True:
            try:
                sent.append((mid, row["contact_id"], transport.send(outgoing)))
                break
            except ThrottledSendError as exc:
                throttled += 1
                result.throttled += 1
                if throttled > 12:
                    # Still throttled after minutes: give the rest back, another pass sends them.
                    return sent, failed, [r["message_id"] for r in rows[index:]], ""
                log.warning("throttled (%s); backing off %.1fs", exc, backoff)
                metrics.THROTTLED.labels(transport.name).inc()
                lim.penalize(rate_key, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, settings.send_max_backoff)
            except TransientSendError as exc:
                transient += 1
                if transient >= settings.send_max_attempts:
                    failed.append((mid, f"{exc} (after {transient} attempts)"))
                    break
                time.sleep(min(backoff, settings.send_max_backoff))
                backoff *= 2
            except PermanentSendError as exc:
                failed.append((mid, str(exc)))
                break
            except TransportMisconfigured as exc:
                return sent, failed, [r["message_id"] for r in rows[index:]], str(exc)
    return sent, failed, [], ""


def _log_chunk(
    rows: list[dict[str, Any]],
    sent: list[tuple[int, int, str]],
    failed: list[tuple[int, str]],
    requeue: list[int],
    transport_name: str,
) -> None:
    """One line per chunk; SES and SMTP send one message a chunk, so there it names the
    message and the provider's id, which its SNS events carry (see core.infra.logs)."""
    first, last = rows[0]["message_id"], rows[-1]["message_id"]
    provider = sent[0][2] if len(rows) == 1 and sent else ""
    log.info(
        "%s: sent %d, failed %d, requeued %d (messages %d-%d)%s",
        transport_name,
        len(sent),
        len(failed),
        len(requeue),
        first,
        last,
        f" as {provider}" if provider else "",
        extra={"message_id": first} if len(rows) == 1 else None,
    )


def send_batch(
    sessions: sessionmaker[Session],
    campaign_id: int,
    first_id: int,
    last_id: int,
    *,
    transport: Transport | None = None,
    rate_limiter: RateLimiter | None = None,
) -> BatchResult:
    """Send the pending messages of `campaign_id` with ids in [first_id, last_id].

    Runs its own transactions (three per chunk: a claim is committed before the transport
    is called, its outcome right after), so it takes a session factory."""
    with sessions() as session, logs.bound(campaign_id=campaign_id):
        return _send_batch(session, campaign_id, first_id, last_id, transport, rate_limiter)


def _send_batch(
    session: Session,
    campaign_id: int,
    first_id: int,
    last_id: int,
    transport: Transport | None,
    rate_limiter: RateLimiter | None,
) -> BatchResult:
    """`send_batch`'s work; commits the session it opened from its factory, per chunk."""
    result = BatchResult()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        session.rollback()
        result.stopped = campaign.status if campaign else "deleted"
        return result
    workspace = referenced(session, Workspace, campaign.workspace_id)
    transport = transport or get_transport_cached()
    lim = rate_limiter or limiter()
    composer = Composer(campaign, workspace)
    composer.compile_variants(session, campaign.variants)
    rate = max(0.1, float(workspace.max_send_rate or 1.0))
    rate_key = f"workspace:{workspace.id}"
    if transport.name in IDEMPOTENT_TRANSPORTS:
        # Small chunks at low rates keep every second under the limit; big ones are cheap.
        chunk = max(1, min(settings.send_batch_size, int(rate / 25)))
    else:
        chunk = 1
    session.commit()

    def pending_after(cursor: int) -> list[int]:
        return list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.campaign_id == campaign_id,
                    Message.id > cursor,
                    Message.id <= last_id,
                    Message.status.in_(PENDING),
                    is_due(clock.now()),
                )
                .order_by(Message.id)
                .limit(chunk)
            )
        )

    # Three transactions per chunk: book slots; check status + claim + load; record + peek.
    ids = pending_after(first_id - 1)
    session.commit()
    deadline = time.monotonic() + settings.send_batch_seconds
    while ids:
        acquire(lim, rate_key, len(ids), rate)
        status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        if status != CampaignStatus.SENDING:
            result.stopped = status or "deleted"
            session.commit()
            return result
        claimed, uncertain = _claim(session, campaign_id, ids)
        rows = _rows(session, claimed) if claimed else []
        session.commit()
        cursor = ids[-1]
        if not rows:
            ids = pending_after(cursor)
            session.commit()
            continue
        sent, failed, requeue, misconfigured = _deliver(
            transport, composer, rows, result, lim, rate_key
        )
        _record(session, campaign, sent, failed, requeue, uncertain, transport.name)
        _log_chunk(rows, sent, failed, requeue, transport.name)
        metrics.count_chunk(
            transport.name,
            campaign.workspace_id,
            len(sent),
            sum(1 for mid, _, _ in sent if mid in uncertain),
            len(failed),
            len(requeue),
        )
        result.sent += len(sent)
        result.failed += len(failed)
        result.requeued += len(requeue)
        if misconfigured:
            session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
                .values(status=CampaignStatus.FAILED, error=misconfigured, finished_at=clock.now())
            )
            session.commit()
            result.stopped = "failed"
            result.errors.append(misconfigured)
            return result
        if requeue:
            jobs.enqueue(session, BATCH_TASK, campaign_id, requeue[0], last_id)
            session.commit()
            result.stopped = "throttled"
            return result
        ids = pending_after(cursor)
        session.commit()
        if ids and time.monotonic() > deadline:
            # A slow rate would keep one task busy for minutes: after at least one chunk, a
            # new task takes the rest, so each ends inside the worker's time limit.
            jobs.enqueue(session, BATCH_TASK, campaign_id, ids[0], last_id)
            session.commit()
            result.stopped = "continued"
            return result
    _finish_if_done(session, campaign_id)
    return result


def _finish_if_done(session: Session, campaign_id: int) -> str | None:
    """Mark a sending campaign sent (or failed, if nothing went out) once every row is final.

    Commits: called only with a session that `send_batch` or `recover` opened themselves."""
    busy = session.scalar(
        select(Message.id)
        .where(Message.campaign_id == campaign_id, Message.status.in_(NOT_FINAL))
        .limit(1)
    )
    if busy is not None:
        session.commit()
        return None
    sent = session.scalar(
        select(Message.id)
        .where(Message.campaign_id == campaign_id, Message.status == MessageStatus.SENT)
        .limit(1)
    )
    status = CampaignStatus.SENT if sent is not None else CampaignStatus.FAILED
    values: dict[str, Any] = {"status": status, "finished_at": clock.now()}
    if status == CampaignStatus.FAILED:
        values["error"] = "No message could be sent: see the failed messages for the reasons."
    done = rowcount(
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
            .values(**values)
        )
    )
    session.commit()
    return status if done else None


def send_test(
    session: Session, actor: Actor, campaign_id: int, to: str, contact_id: int | None = None
) -> str:
    """Send the campaign as it stands to any address, rendered for a chosen contact.

    The address is checked as the template editor's test send checks it
    (`accounts.auth.normalize_email`), and the send is written to the audit log as there."""
    actor.require("edit")
    to = normalize_email(to)
    campaign = campaigns.get_campaign(session, actor, campaign_id)
    rendered = campaigns.preview(session, actor, campaign_id, contact_id)
    workspace = referenced(session, Workspace, campaign.workspace_id)
    composer = Composer(campaign, workspace)
    raw = composer.build(
        message_id=0,
        to=to,
        rendered=Rendered(f"[Test] {rendered.subject}", rendered.html, rendered.text),
        unsubscribe=campaigns.sample_variables(session, campaign, None)["unsubscribe_url"],
    )
    provider_id = get_transport_cached().send(composer.outgoing(raw, 0, to))
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="campaign_test_sent",
            target=to,
            detail={"campaign": campaign.name},
        )
    )
    return provider_id


def _start_due_campaigns(session: Session) -> list[int]:
    """Start every scheduled campaign whose time has come (`tick`'s session: commits)."""
    due = session.scalars(
        select(Campaign.id).where(
            Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at <= clock.now()
        )
    ).all()
    session.commit()
    return [cid for cid in due if _start_campaign(session, cid)]


def recover(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Give back what lost workers held, re-dispatch stalled campaigns, finish done ones.

    A "sending" row older than the lease belongs to a dead worker: the outbox resends it
    (overwriting), other transports mark it uncertain and resend it once. Runs its own
    transactions (one per campaign), so it takes a session factory."""
    with sessions() as session:
        return _recover(session)


def _recover(session: Session) -> dict[str, int]:
    """`recover`'s work; commits once per campaign the session its caller opened."""
    now = clock.now()
    cutoff = now - timedelta(seconds=settings.send_lease_seconds)
    reclaimed_to = (
        MessageStatus.QUEUED
        if settings.email_transport in IDEMPOTENT_TRANSPORTS
        else MessageStatus.UNCERTAIN
    )
    stats = {"reclaimed": 0, "redispatched": 0, "finished": 0}
    campaign_ids = session.scalars(
        select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING)
    ).all()
    for cid in campaign_ids:
        stats["reclaimed"] += int(
            rowcount(
                session.execute(
                    update(Message)
                    .where(
                        Message.campaign_id == cid,
                        Message.status == MessageStatus.SENDING,
                        Message.updated_at < cutoff,
                    )
                    # The clock stays: a reclaim is not a sign of life, so the re-dispatch
                    # below still counts one lease from the worker's last write.
                    .values(status=reclaimed_to)
                )
            )
            or 0
        )
        session.commit()
        if _finish_if_done(session, cid):
            stats["finished"] += 1
            continue
        # Only with rows due and waiting is the last sign of life read (a time-zone campaign
        # between two waves skips the max() over its whole ledger).
        if _pending_due(session, cid, now) and _last_activity(session, cid, cutoff) <= cutoff:
            dispatch_batches(session, cid)
            # Touch a pending row's clock, so the next tick waits a full lease again (a
            # time-zone campaign's dispatch stamps waves_dispatched_at, which counts too).
            first_pending = (
                select(Message.id)
                .where(Message.campaign_id == cid, Message.status.in_(PENDING))
                .limit(1)
                .scalar_subquery()
            )
            session.execute(
                update(Message).where(Message.id == first_pending).values(updated_at=now)
            )
            stats["redispatched"] += 1
        session.commit()
    return stats


def _last_activity(session: Session, campaign_id: int, cutoff: Any) -> Any:
    """The campaign's last sign of life: its start, a ledger write (a reclaim writes only
    the status, so it is not one), or a time-zone wave queued; at least `cutoff`."""
    started, queued_wave = session.execute(
        select(Campaign.started_at, Campaign.waves_dispatched_at).where(Campaign.id == campaign_id)
    ).one()
    last = session.scalar(
        select(func.max(Message.updated_at)).where(Message.campaign_id == campaign_id)
    )
    moments = (clock.as_utc(last), clock.as_utc(started), clock.as_utc(queued_wave), cutoff)
    return max(t for t in moments if t)


def _pending_due(session: Session, campaign_id: int, now: Any) -> bool:
    """Whether a pending row may be sent now. A time-zone campaign asks the index of due
    times (one probe per status: `next_wave`), never walking the later waves' rows."""
    wave_campaign = session.scalar(
        select(Campaign.local_send_time).where(Campaign.id == campaign_id)
    )
    if not wave_campaign:
        found = session.scalar(
            select(Message.id)
            .where(Message.campaign_id == campaign_id, Message.status.in_(PENDING))
            .limit(1)
        )
        return found is not None
    for status in PENDING:
        nearest = clock.as_utc(next_wave(session, campaign_id, status))
        if nearest is not None and nearest <= now:
            return True
    return False


def _dispatch_waves(session: Session) -> list[int]:
    """Queue the time-zone waves that fell due since the last tick (`tick`'s session:
    commits once per campaign); the ids of the campaigns that got a wave."""
    campaign_ids = session.scalars(
        select(Campaign.id).where(
            Campaign.status == CampaignStatus.SENDING, Campaign.local_send_time.is_not(None)
        )
    ).all()
    queued = []
    for cid in campaign_ids:
        if dispatch_due_waves(session, cid):
            queued.append(cid)
            log.info("campaign %s: a time-zone wave fell due", cid, extra={"campaign_id": cid})
        session.commit()
    return queued


def tick(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """What beat runs every SEND_TICK_SECONDS (its own transactions: a session factory)."""
    with sessions() as session:
        started = _start_due_campaigns(session)
        queued = _dispatch_waves(session)
        return {"started": started, "waves": queued, **_recover(session)}
