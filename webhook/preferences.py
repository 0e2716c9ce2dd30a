"""The preference centre on the public service (issue 17).

`GET /p/{token}`: the workspace's public lists as checkboxes, the person's name, and
"unsubscribe from everything" (plain HTML and CSS, labelled controls, no JavaScript);
`POST /p/{token}` saves it (every change a consent row, in core.forms.preferences);
`GET /p/{token}/data` downloads what we hold about the person as JSON. `/p/test/{token}`
is the link of previews and test sends: a page saying so, reading and writing nothing.
Every user-provided text is escaped; core runs in the threadpool.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from core.forms import preferences as prefs
from core.forms.page import escape as _e
from core.forms.page import page
from core.infra.db import read_scope, session_scope
from core.infra.errors import InvalidToken, NotFound, ValidationFailed
from core.ingest.tracking import parse_preferences, parse_test_send_preferences
from webhook.client import client_of
from webhook.forms import HEADERS, MAX_BODY, _read_body

router = APIRouter()


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(page(title, body), status_code=status, headers=HEADERS)


def _gone() -> HTMLResponse:
    return _page(
        "Link not valid",
        "<h1>This link is not valid</h1><p>It may have been altered or copied incompletely.</p>",
        404,
    )


def _client(request: Request) -> tuple[str, str]:
    return client_of(request), request.headers.get("user-agent", "")


@router.get("/p/test/{token}")
@router.post("/p/test/{token}")
def test_send_preferences(token: str) -> HTMLResponse:
    """The preference link of a preview or test send: nothing is read or changed."""
    try:
        parse_test_send_preferences(token)
    except InvalidToken:
        return _gone()
    return _page(
        "Test message",
        "<h1>This is a test message</h1><p>Nothing was changed.</p>"
        '<p class="muted">In the mail of a real campaign, this link opens the recipient\'s '
        "email preferences.</p>",
    )


def _show(ws: int, contact: int) -> prefs.Preferences:
    with read_scope() as session:
        return prefs.preferences(session, ws, contact)


def _render(token: str, p: prefs.Preferences, notice: str = "", error: str = "") -> str:
    checks = "".join(
        '<div class="check">'
        f'<input type="checkbox" id="list-{lst.id}" name="list" value="{lst.id}"'
        f"{' checked' if lst.member else ''}>"
        f'<label for="list-{lst.id}">{_e(lst.name)}'
        + (f'<span class="muted">{_e(lst.description)}</span>' if lst.description else "")
        + "</label></div>"
        for lst in p.lists
    )
    lists = (
        f"<fieldset><legend>Lists</legend>{checks}</fieldset>"
        if p.lists
        else '<p class="muted">There are no lists to choose from.</p>'
    )
    status = (
        ""
        if p.subscribed
        else '<p class="muted">You are unsubscribed from all email of this sender; '
        "ticking a list does not subscribe you again (sign up again for that).</p>"
    )
    return (
        f'<h1>Email preferences</h1><p class="from">{_e(p.workspace_name)} · {_e(p.email)}</p>'
        + (f'<p class="notice" role="status">{_e(notice)}</p>' if notice else "")
        + (f'<p class="error" role="alert">{_e(error)}</p>' if error else "")
        + status
        + f'<form method="post" action="/p/{_e(token)}">'
        '<div class="field"><label for="first_name">First name</label>'
        f'<input type="text" id="first_name" name="first_name" autocomplete="given-name" '
        f'maxlength="100" value="{_e(p.first_name)}"></div>'
        '<div class="field"><label for="last_name">Last name</label>'
        f'<input type="text" id="last_name" name="last_name" autocomplete="family-name" '
        f'maxlength="100" value="{_e(p.last_name)}"></div>'
        + lists
        + '<div class="check"><input type="checkbox" id="unsubscribe_all" '
        'name="unsubscribe_all" value="1"><label for="unsubscribe_all">'
        "Unsubscribe from everything</label></div>"
        '<button type="submit">Save my preferences</button></form>'
        f'<a class="button" href="/p/{_e(token)}/data" download>Download my data (JSON)</a>'
    )


@router.get("/p/{token}")
async def preferences_page(token: str) -> Response:
    try:
        ws, contact = parse_preferences(token)
        shown = await run_in_threadpool(_show, ws, contact)
    except (InvalidToken, NotFound):
        return _gone()
    return _page("Email preferences", _render(token, shown))


def _save(ws: int, contact: int, data: list[tuple[str, str]], ip: str, agent: str) -> prefs.Saved:
    fields = dict(data)
    ids = set()
    for key, value in data:
        if key == "list" and value.isdigit():
            ids.add(int(value))
    with session_scope() as session:
        return prefs.save_preferences(
            session,
            ws,
            contact,
            first_name=fields.get("first_name", ""),
            last_name=fields.get("last_name", ""),
            list_ids=ids,
            unsubscribe_all=fields.get("unsubscribe_all") == "1",
            ip=ip,
            user_agent=agent,
        )


def _said(saved: prefs.Saved) -> str:
    parts = []
    if saved.unsubscribed:
        parts.append("You are unsubscribed from everything.")
    if saved.joined:
        parts.append("Joined: " + ", ".join(saved.joined) + ".")
    if saved.left:
        parts.append("Left: " + ", ".join(saved.left) + ".")
    if saved.renamed:
        parts.append("Your name is saved.")
    return " ".join(parts) or "Nothing changed."


@router.post("/p/{token}")
async def preferences_save(token: str, request: Request) -> Response:
    try:
        ws, contact = parse_preferences(token)
    except InvalidToken:
        return _gone()
    body = await _read_body(request)
    if body is None:
        return _page(
            "Too much data", f"<h1>Too much data</h1><p>At most {MAX_BODY} bytes.</p>", 413
        )
    try:
        data = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return _page("Cannot read this form", "<h1>Cannot read this form</h1>", 400)
    ip, agent = _client(request)
    error = notice = ""
    try:
        saved = await run_in_threadpool(_save, ws, contact, data, ip, agent)
        notice = _said(saved)
    except NotFound:
        return _gone()
    except ValidationFailed as exc:
        error = str(exc)
    shown = await run_in_threadpool(_show, ws, contact)
    return _page("Email preferences", _render(token, shown, notice, error), 422 if error else 200)


def _data(ws: int, contact: int) -> dict:
    with read_scope() as session:
        return prefs.data_of(session, ws, contact)


@router.get("/p/{token}/data")
async def preferences_data(token: str) -> Response:
    try:
        ws, contact = parse_preferences(token)
        data = await run_in_threadpool(_data, ws, contact)
    except (InvalidToken, NotFound):
        return _gone()
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False, default=str),
        media_type="application/json",
        headers={**HEADERS, "Content-Disposition": 'attachment; filename="my-data.json"'},
    )
