"""Signup forms and double opt-in on the public service (issue 17).

`GET /f/{form_id}` serves the hosted form (plain HTML and CSS: labelled fields, no
JavaScript, a hidden honeypot and a signed fill-time stamp); `POST /f/{form_id}` takes it
(form-encoded, at most 64 KB) and answers with the form's one message or its redirect.
`GET /c/{token}` shows one "Confirm my subscription" button that POSTs to the same URL, so
the link scanners that fetch every link in a mail confirm nobody; `POST /c/{token}`
confirms. Every user-provided text on these pages is HTML-escaped; core's database work
runs in the threadpool, never on the event loop.

A post is answered once it is in the signup inbox (core.forms.inbox), the worker
subscribes it a moment later. On the request path: the form's definition from a
per-process cache (FORM_CACHE_SECONDS: an edit reaches the POST handling within that
time), the checks that need no database (size, unknown fields 400, honeypot and fill
time, the address and the values 422), then one INSERT shared with the posts arriving
alongside it (group commit, webhook/groups.py), which also applies the per-IP limit
(429).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from core.forms import inbox, signup
from core.forms.page import escape as _e
from core.forms.page import page, render_form
from core.forms.service import HONEYPOT, STAMP
from core.infra.clientip import client_ip
from core.infra.config import settings
from core.infra.db import read_scope, session_scope
from core.infra.errors import InvalidToken, NotFound, ValidationFailed
from webhook.client import client_of
from webhook.groups import GroupCommitter, run_in_transaction

log = logging.getLogger("webhook.forms")
router = APIRouter()

MAX_BODY = 64 * 1024
HEADERS = {
    "Cache-Control": "no-store, private, max-age=0",
    # The confirmation token is in the URL: never hand it on to another site.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(page(title, body), status_code=status, headers=HEADERS)


def _message(title: str, text: str, status: int = 200, extra: str = "") -> HTMLResponse:
    return _page(title, f"<h1>{_e(title)}</h1><p>{_e(text)}</p>{extra}", status)


def _not_found() -> HTMLResponse:
    return _message(
        "Form not found", "This signup form does not exist or is no longer available.", 404
    )


def _client(request: Request) -> tuple[str, str]:
    return client_of(request), request.headers.get("user-agent", "")


# ---------------------------------------------------------------- the hosted form


def _load_form(form_id: str) -> signup.PublicForm:
    with read_scope() as session:
        return signup.public_form(session, form_id)


class FormCache:
    """Forms as the POST handling sees them, kept FORM_CACHE_SECONDS per process (an
    unknown id too, so random ids cost one read each per period); at most MAX entries."""

    MAX = 1024

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[float, signup.PublicForm | None]] = {}

    async def get(self, form_id: str) -> signup.PublicForm | None:
        key = (settings.database_url, form_id[:16])
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            form: signup.PublicForm | None = await run_in_threadpool(_load_form, form_id)
        except NotFound:
            form = None
        if len(self._entries) >= self.MAX:
            self._entries.pop(next(iter(self._entries)))
        self._entries.pop(key, None)
        self._entries[key] = (now + settings.form_cache_seconds, form)
        return form

    def clear(self) -> None:
        self._entries.clear()


forms_cache = FormCache()


def _accept(items: Sequence[inbox.SignupItem]) -> list[str]:
    return run_in_transaction(lambda conn: inbox.accept_signups(conn, items))


signups: GroupCommitter[inbox.SignupItem, str] = GroupCommitter(
    _accept, max_batch=settings.webhook_batch_size, writers=max(1, settings.webhook_writers)
)


@router.get("/f/{form_id}")
async def form_page(form_id: str) -> Response:
    try:
        form = await run_in_threadpool(_load_form, form_id)
    except NotFound:
        return _not_found()
    return _page(form.name, render_form(form, signup.fill_stamp(form.id)))


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is over MAX_BODY (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


FORM_POST = "/f/"


def is_form_post(scope: Scope) -> bool:
    """`POST /f/{form_id}`, which WebhookApp hands to `form_post` before FastAPI."""
    path = scope["path"]
    return (
        scope["method"] == "POST"
        and path.startswith(FORM_POST)
        and "/" not in path[3:]
        and path[3:] != ""
    )


async def form_post(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /f/{form_id} as a plain ASGI handler: FastAPI's routing and request objects
    cost about as much CPU as everything this route does itself (measured with
    bench/forms.py), so it reads its headers and body here, like `POST /sns/ses`."""
    declared = content_type = agent = ""
    forwarded: list[str] = []
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"user-agent":
            agent = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            forwarded.append(value.decode("latin-1"))
    body: bytes | None = None
    if not (declared.isdigit() and int(declared) > MAX_BODY):
        try:
            body = await _receive_body(receive)
        except _Disconnected:
            return
    peer = scope["client"][0] if scope.get("client") else ""
    response = await _answer_post(
        scope["path"][len(FORM_POST) :],
        body,
        content_type,
        client_ip(peer, forwarded),
        agent,
    )
    await response(scope, receive, send)


class _Disconnected(Exception):
    """The client went away before its body arrived."""


async def _receive_body(receive: Receive) -> bytes | None:
    """The body, or None when it is over MAX_BODY (read no further than that)."""
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


async def _answer_post(
    form_id: str, body: bytes | None, content_type: str, ip: str, agent: str
) -> Response:
    if body is None:
        return _message("Too much data", "This form takes at most 64 KB.", 413)
    kind = content_type.split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return _message("Cannot read this form", "Send the form as a web browser does.", 400)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50
        )
    except (UnicodeDecodeError, ValueError):
        return _message("Cannot read this form", "The data sent is not a valid form.", 400)
    data = dict(pairs)
    form = await forms_cache.get(form_id)
    if form is None:
        return _not_found()
    try:
        checked = signup.check_submission(form, data, time.time())
    except signup.UnknownFields as exc:
        return _message("Cannot read this form", str(exc), 400)
    except ValidationFailed as exc:
        # The person's answers come back (escaped) with the reason.
        refill = {k: v for k, v in data.items() if k not in (HONEYPOT, STAMP)}
        error = str(exc).replace(repr(data.get("email", "")), "This")
        return _page(form.name, render_form(form, data.get(STAMP, ""), refill, error), 422)
    if isinstance(checked, signup.Checked):
        outcome = await signups.submit(inbox.item_for(form, checked, ip, agent))
        if outcome == inbox.LIMITED:
            return _message(
                "Please try again later",
                "Too many sign-ups from your network. Please try again later.",
                429,
            )
    else:
        log.info("form %s: %s", form.id, checked)  # a bot's post: the same answer
    if form.redirect_url:
        return RedirectResponse(form.redirect_url, status_code=303, headers=HEADERS)
    return _answers.get(form)


class _Answers:
    """The answer page of each form, rendered once per form definition (it depends on
    nothing else: see core.forms.signup)."""

    def __init__(self) -> None:
        self._pages: dict[signup.PublicForm, bytes] = {}

    def get(self, form: signup.PublicForm) -> Response:
        content = self._pages.get(form)
        if content is None:
            title = "Check your inbox" if form.double_opt_in else "Thank you"
            content = page(
                title,
                f'<h1>{_e(title)}</h1><p class="from">{_e(form.workspace_name)}</p>'
                f"<p>{_e(form.answer)}</p>",
            ).encode()
            if len(self._pages) >= FormCache.MAX:
                self._pages.clear()
            self._pages[form] = content
        return Response(content, media_type="text/html; charset=utf-8", headers=HEADERS)


_answers = _Answers()


# ---------------------------------------------------------------- confirmation


def _describe(token: str) -> signup.Confirmation:
    with read_scope() as session:
        return signup.describe_confirmation(session, token)


def _confirm(token: str, ip: str, agent: str) -> signup.Confirmation:
    with session_scope() as session:
        return signup.confirm(session, token, ip=ip, user_agent=agent)


def _bad_link(exc: Exception) -> HTMLResponse:
    text = str(exc) if "expired" in str(exc) else "It may have been altered or copied incompletely."
    if isinstance(exc, NotFound):
        text = str(exc)
    return _message("This link is not valid", text, 404)


def _subscribed(info: signup.Confirmation) -> HTMLResponse:
    return _message(
        "You are subscribed",
        f"Thank you: {info.email} now receives email from {info.workspace_name}.",
    )


@router.get("/c/{token}")
async def confirm_page(token: str) -> Response:
    """Shows the button; a GET changes nothing (mail scanners fetch every link)."""
    try:
        info = await run_in_threadpool(_describe, token)
    except (InvalidToken, NotFound) as exc:
        return _bad_link(exc)
    if info.done:
        return _subscribed(info)
    return _page(
        "Confirm your subscription",
        "<h1>Confirm your subscription</h1>"
        f"<p>Receive email from <strong>{_e(info.workspace_name)}</strong> at {_e(info.email)}?</p>"
        f'<form method="post" action="/c/{_e(token)}">'
        '<button type="submit">Confirm my subscription</button></form>'
        '<p class="muted">If you did not sign up, close this page: nothing happens.</p>',
    )


@router.post("/c/{token}")
async def confirm_post(token: str, request: Request) -> Response:
    ip, agent = _client(request)
    try:
        info = await run_in_threadpool(_confirm, token, ip, agent)
    except (InvalidToken, NotFound) as exc:
        return _bad_link(exc)
    return _subscribed(info)
