"""`uvicorn webhook.main:app`: a separate process from the Streamlit app.

Routes: SES events through SNS (`POST /sns/ses`, a plain ASGI handler in front of
FastAPI's router for speed: see WebhookApp), the open pixel (`GET /t/o/{token}.gif`),
the click redirect (`GET /t/c/{token}`) and unsubscribe (`GET`/`POST /u/{token}`, the
POST being RFC 8058 one-click; `/u/test/{token}` for previews and test sends), and signup
forms with their double opt-in (`/f/{form_id}`, `/c/{token}`: webhook/forms.py), and for
operations `/healthz` (liveness), `/readyz` (readiness) and `/metrics` (Prometheus). Each route
is thin: it checks the request, calls `core`, and maps domain errors to status codes (403
forged, 400 malformed, 404 unknown token).

An SES notification is answered once it is stored in the inbox (sns_message.body), in a
transaction shared with the notifications arriving alongside it; the worker makes its
events a moment later, in large batches (core.ingest.inbox.drain_sns_backlog). So the request
path is verify, store, answer, whatever the ledger look-ups and the nine indexes of an
event cost.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from core.infra import health, logs, metrics
from core.infra.config import settings
from core.infra.db import read_scope, session_scope
from core.infra.errors import InvalidToken, NotFound
from core.infra.permissions import Actor
from core.ingest import inbox, own, sns
from core.ingest.tracking import (
    UnsubscribeTarget,
    parse_click,
    parse_open,
    parse_test_send_unsubscribe,
    parse_unsubscribe,
)
from core.models import SnsMessage
from core.sending import figures as sending_figures
from webhook.client import client_of
from webhook.forms import form_post, is_form_post
from webhook.forms import router as forms_router
from webhook.groups import GroupCommitter, run_in_transaction
from webhook.preferences import router as preferences_router

log = logging.getLogger("webhook")

SNS_PATH = "/sns/ses"
MAX_SNS_BODY = 512 * 1024  # SNS messages are at most 256 KB


class WebhookApp(FastAPI):
    """FastAPI, with `POST /sns/ses` (and `POST /f/{form_id}`: webhook/forms.py) answered
    before FastAPI's per-request machinery.

    SES can publish thousands of events a second. Measured on this stack, routing a
    request through FastAPI costs about 100 us of CPU against 30 us for a plain ASGI
    handler: a fifth of the whole budget of a verified, stored event. The handler does
    its own body reading and error mapping (`handle_sns`); every other route is FastAPI's.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # The request-id middleware, inline: every line this request logs carries its id
        # (X-Request-ID from the load balancer when it sends a sane one), and so does the
        # answer. A context variable set here is seen by the threadpool's calls too.
        request_id = _request_id(scope)
        tokens = logs.bind(request_id=request_id)
        try:
            if scope["path"] == SNS_PATH and scope["method"] == "POST":
                await sns_endpoint(scope, receive, send)
            elif is_form_post(scope):
                await form_post(scope, receive, _with_request_id(send, request_id))
            else:
                await super().__call__(scope, receive, _with_request_id(send, request_id))
        finally:
            logs.unbind(tokens)


REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return os.urandom(8).hex()


def _with_request_id(send: Send, request_id: str) -> Send:
    header = (b"x-request-id", request_id.encode("ascii"))

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), header]}
        await send(message)

    return sender


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # At server start (after uvicorn set up its loggers): LOG_FORMAT and LOG_LEVEL.
    logs.configure_logging()
    yield


app = WebhookApp(title="Mailwright webhook", docs_url=None, redoc_url=None, lifespan=lifespan)
app.include_router(forms_router)
app.include_router(preferences_router)

# 1x1 transparent GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}


@app.get("/healthz")
async def healthz() -> JSONResponse:
    """Liveness: 200 while this process's event loop answers. It reads nothing, so a
    database outage does not make a supervisor restart healthy processes (see /readyz)."""
    return JSONResponse({"status": "ok"})


@app.get("/readyz")
async def readyz() -> JSONResponse:
    """Readiness: the database and the broker answer and the migrations are at head; 503
    with the reason otherwise. The checks run in the threadpool, together, each under
    READY_TIMEOUT_SECONDS, so a dead dependency never blocks the event loop."""
    names = list(health.CHECKS)
    results = await asyncio.gather(*(_check(name) for name in names))
    body: dict[str, str] = dict(zip(names, results, strict=True))
    ready = all(result == "ok" for result in results)
    body["status"] = "ok" if ready else "unavailable"
    return JSONResponse(body, status_code=200 if ready else 503)


async def _check(name: str) -> str:
    try:
        await asyncio.wait_for(
            run_in_threadpool(health.CHECKS[name]), settings.ready_timeout_seconds
        )
    except TimeoutError:
        log.warning("readiness: %s did not answer in %ss", name, settings.ready_timeout_seconds)
        return "timed out"
    except health.NotReady as exc:
        log.warning("readiness: %s", exc)
        return str(exc)
    except Exception:
        # The detail (host, port, user) goes to the log, not to whoever asked.
        log.exception("readiness: the %s does not answer", name)
        return "unavailable"
    return "ok"


T = TypeVar("T")


def _read(what: str, reader: Callable[[Session], T]) -> T | None:
    """`reader` on a read-only session, or None (logged) when the database does not answer:
    a scrape reports what it can."""
    try:
        with read_scope() as session:
            return reader(session)
    except Exception:
        log.warning("metrics: could not read %s", what, exc_info=True)
        return None


def _scrape() -> bytes:
    return metrics.scrape(
        _read("the SNS inbox", inbox.inbox_backlog),
        _read("what is sending", sending_figures.sending_snapshot),
    )


@app.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics of every process of this service (core.infra.metrics). Keep the
    path off the internet at the load balancer; METRICS_TOKEN adds a bearer token."""
    if settings.metrics_token and not hmac.compare_digest(
        request.headers.get("authorization", ""), f"Bearer {settings.metrics_token}"
    ):
        return Response("Unauthorized", status_code=401, media_type="text/plain")
    body = await run_in_threadpool(_scrape)
    return Response(body, media_type=metrics.CONTENT_TYPE)


# ---------------------------------------------------------------- SNS


def _accept(items: Sequence[inbox.SnsItem]) -> list[str]:
    return run_in_transaction(lambda conn: inbox.accept_sns_notifications(conn, items))


notifications: GroupCommitter[inbox.SnsItem, str] = GroupCommitter(
    _accept, max_batch=settings.webhook_batch_size, writers=max(1, settings.webhook_writers)
)


def _handle_subscription(envelope: sns.SnsEnvelope) -> str:
    with session_scope() as session:
        if session.get(SnsMessage, envelope.message_id) is not None:
            return "replay"
    if envelope.type == "SubscriptionConfirmation":
        # Outside the transaction: the GET may take seconds. Failing raises, SNS retries.
        sns.confirm_subscription(envelope)
    else:
        log.info("SNS unsubscribed us from %s (not visiting any URL)", envelope.topic_arn)
    with session_scope() as session:
        inbox.remember_sns_message(session, envelope.message_id, envelope.type, envelope.topic_arn)
    return "confirmed" if envelope.type == "SubscriptionConfirmation" else "logged"


async def handle_sns(body: bytes, message_type: str | None) -> tuple[int, dict[str, str]]:
    """An SES event, a subscription confirmation or an unsubscribe notice from SNS:
    (status code, JSON body). 403 forged, 400 malformed, 200 stored, 503 our fault."""
    try:
        message = sns.parse_body(body, message_type)
        envelope = await sns.verify_async(message)
    except sns.MalformedMessage as exc:
        metrics.SNS.labels("malformed").inc()
        return 400, {"error": str(exc)}
    except sns.CertificateUnavailable as exc:
        log.warning("deferred an SNS message: %s", exc)
        metrics.SNS.labels("deferred").inc()
        return 503, {"error": str(exc)}
    except sns.InvalidSignature as exc:
        log.warning("refused an SNS message: %s", exc)
        metrics.SNS.labels("forged").inc()
        return 403, {"error": str(exc)}
    try:
        if envelope.type == "Notification":
            item = inbox.SnsItem(
                envelope.message_id, envelope.type, envelope.topic_arn, envelope.message
            )
            outcome = await notifications.submit(item)
        else:
            outcome = await run_in_threadpool(_handle_subscription, envelope)
    except sns.InvalidSignature as exc:  # a SubscribeURL off the SNS hosts
        metrics.SNS.labels("forged").inc()
        return 403, {"error": str(exc)}
    except Exception:
        log.exception("could not handle SNS message %s", envelope.message_id)
        metrics.SNS.labels("error").inc()
        return 503, {"error": "could not store the message; retry later"}
    metrics.SNS.labels(outcome).inc()
    return 200, {"status": outcome}


async def sns_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /sns/ses as a plain ASGI handler (see WebhookApp)."""
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_SNS_BODY:
            await _send_json(send, 413, {"error": "body too large for an SNS message"})
            return
    message_type = None
    for name, value in scope["headers"]:
        if name == b"x-amz-sns-message-type":
            message_type = value.decode("latin-1")
    status, payload = await handle_sns(bytes(body), message_type)
    await _send_json(send, status, payload)


# The answers to nearly every notification, encoded once.
_OUTCOMES = {
    outcome: json.dumps({"status": outcome}, separators=(",", ":")).encode()
    for outcome in ("stored", "replay", "ignored")
}


async def _send_json(send: Send, status: int, payload: dict[str, str]) -> None:
    data = _OUTCOMES.get(payload.get("status", "")) if status == 200 and len(payload) == 1 else None
    if data is None:
        data = json.dumps(payload, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


# ---------------------------------------------------------------- tracking


def _not_found() -> Response:
    return Response("Not found", status_code=404, media_type="text/plain")


def _client(request: Request) -> tuple[str | None, str | None]:
    return request.headers.get("user-agent"), client_of(request) or None


@app.get("/t/o/{token}.gif")
def open_pixel(token: str, request: Request) -> Response:
    """Records an open and returns a 1x1 GIF that no cache keeps."""
    try:
        target = parse_open(token)
        with session_scope() as session:
            own.record_open(
                session, Actor.system(target.workspace_id), target.message_id, *_client(request)
            )
    except (InvalidToken, NotFound):
        return _not_found()
    metrics.TRACKING.labels("open").inc()
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


@app.get("/t/c/{token}")
def click(token: str, request: Request) -> Response:
    """Records a click and redirects to the link the message contained (only that one)."""
    try:
        target = parse_click(token)
        with session_scope() as session:
            url = own.record_click(
                session,
                Actor.system(target.workspace_id),
                target.message_id,
                target.url,
                *_client(request),
            )
    except (InvalidToken, NotFound):
        return _not_found()
    metrics.TRACKING.labels("click").inc()
    return RedirectResponse(url, status_code=302, headers=NO_CACHE)


# ---------------------------------------------------------------- unsubscribe

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto;
       padding: 0 1rem; color: #1f2933; line-height: 1.5; }}
button {{ font-size: 1rem; padding: .6rem 1.2rem; border: 0; border-radius: .4rem;
          background: #1f6feb; color: white; cursor: pointer; }}
.muted {{ color: #616e7c; font-size: .9rem; }}
</style></head>
<body><main>{body}</main></body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body), status_code=status)


def _gone() -> HTMLResponse:
    return _page(
        "Link not valid",
        "<h1>This link is not valid</h1><p>It may have been altered or copied incompletely.</p>",
        404,
    )


TEST_PAGE = (
    "<h1>This is a test message</h1>"
    "<p>Nothing was changed: no address was unsubscribed.</p>"
    '<p class="muted">In the mail of a real campaign, this link lets the recipient '
    "unsubscribe.</p>"
)


@app.get("/u/test/{token}")
@app.post("/u/test/{token}")
def test_send_unsubscribe(token: str) -> HTMLResponse:
    """The unsubscribe link (and one-click POST) of a preview or test send: the token is
    signed, names no contact, and nothing is read or written."""
    try:
        parse_test_send_unsubscribe(token)
    except InvalidToken:
        return _gone()
    return _page("Test message", TEST_PAGE)


@app.get("/u/{token}")
def unsubscribe_page(token: str) -> HTMLResponse:
    """A page naming the workspace, with one button that unsubscribes."""
    try:
        target = parse_unsubscribe(token)
        with session_scope() as session:
            info = own.describe_unsubscribe(
                session, Actor.system(target.workspace_id), target.contact_id, target.message_id
            )
    except (InvalidToken, NotFound):
        return _gone()
    name, email = html.escape(info.workspace_name), html.escape(info.email)
    if info.status != "subscribed":
        return _page(
            "Unsubscribed",
            f"<h1>You are unsubscribed</h1><p>{email} gets no more email from {name}.</p>",
        )
    return _page(
        f"Unsubscribe from {info.workspace_name}",
        f"<h1>Unsubscribe from {name}</h1>"
        f"<p>Stop all marketing email from <strong>{name}</strong> to {email}?</p>"
        f'<form method="post" action="/u/{html.escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<input type="hidden" name="via" value="page">'
        '<button type="submit">Unsubscribe</button></form>'
        '<p class="muted">It takes effect at once.</p>',
    )


def _unsubscribe(target: UnsubscribeTarget, via: str, ip: str, agent: str) -> own.UnsubscribePage:
    with session_scope() as session:
        return own.unsubscribe(
            session,
            Actor.system(target.workspace_id),
            target.contact_id,
            target.message_id,
            via=via,
            ip=ip,
            user_agent=agent,
        )


@app.post("/u/{token}")
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) and the page's button (which
    also sends `via=page`, so the consent record tells them apart)."""
    body = b""
    async for chunk in request.stream():  # a few bytes; never more than 4 KB read
        body += chunk
        if len(body) > 4096:
            break
    via = "page" if b"via=page" in body else "one-click"
    ip = client_of(request)
    agent = request.headers.get("user-agent", "")
    try:
        target = parse_unsubscribe(token)
        info = await run_in_threadpool(_unsubscribe, target, via, ip, agent)
    except (InvalidToken, NotFound):
        return _gone()
    metrics.TRACKING.labels("unsubscribe").inc()
    name, email = html.escape(info.workspace_name), html.escape(info.email)
    return _page(
        "Unsubscribed",
        f"<h1>You are unsubscribed</h1><p>{email} gets no more email from {name}.</p>",
    )
