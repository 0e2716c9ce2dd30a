"""URLs that go into mail and come back to the webhook: open pixel, click redirect,
unsubscribe, the preference centre. Each carries a signed token naming the workspace and the ledger row, so
nobody can forge statistics or unsubscribe someone else.

Previews and test sends carry a test unsubscribe link instead
(`unsubscribe_url_of_test_send`): it names no contact, so a forwarded test mail cannot
unsubscribe anyone, and it leads to a page saying that this was a test and nothing changed."""

from __future__ import annotations

from dataclasses import dataclass

from core.infra.config import settings
from core.infra.errors import InvalidToken
from core.infra.tokens import sign, unsign


@dataclass(frozen=True)
class TrackedMessage:
    workspace_id: int
    message_id: int


@dataclass(frozen=True)
class TrackedClick(TrackedMessage):
    url: str


@dataclass(frozen=True)
class UnsubscribeTarget:
    workspace_id: int
    contact_id: int
    message_id: int | None  # None for test sends and links outside a campaign


def _base() -> str:
    return settings.public_base_url.rstrip("/")


def open_url(workspace_id: int, message_id: int) -> str:
    return f"{_base()}/t/o/{sign('open', workspace_id, message_id)}.gif"


def click_url(workspace_id: int, message_id: int, url: str) -> str:
    # The destination is inside the signed token: the redirect can only lead where the
    # message really linked (no open redirect), and nobody can mint click events.
    return f"{_base()}/t/c/{sign('click', workspace_id, message_id, url)}"


def unsubscribe_url(workspace_id: int, contact_id: int, message_id: int | None = None) -> str:
    return f"{_base()}/u/{sign('unsub', workspace_id, contact_id, message_id or 0)}"


def unsubscribe_url_of_test_send(workspace_id: int) -> str:
    """The unsubscribe link of a preview or test send (page and one-click POST)."""
    return f"{_base()}/u/test/{sign('unsub-test', workspace_id)}"


def preferences_url(workspace_id: int, contact_id: int) -> str:
    """The contact's preference centre (lists, name, unsubscribe, their data)."""
    return f"{_base()}/p/{sign('prefs', workspace_id, contact_id)}"


def preferences_url_of_test_send(workspace_id: int) -> str:
    """The preference centre link of a preview or test send: a page that changes nothing."""
    return f"{_base()}/p/test/{sign('prefs-test', workspace_id)}"


def preferences_url_like(unsubscribe: str, workspace_id: int, contact_id: int) -> str:
    """The preference link that goes with an unsubscribe link: a test one for a test send
    (so a previewed contact is never changed), the contact's own otherwise."""
    if "/u/test/" in unsubscribe or not contact_id:
        return preferences_url_of_test_send(workspace_id)
    return preferences_url(workspace_id, contact_id)


def parse_preferences(token: str) -> tuple[int, int]:
    """(workspace, contact) of a preference centre token; InvalidToken if forged."""
    parts = unsign("prefs", token)
    if len(parts) != 2:
        raise InvalidToken("malformed token")
    ws, contact = _ints(parts, 2)
    return ws, contact


def parse_test_send_preferences(token: str) -> int:
    parts = unsign("prefs-test", token)
    if len(parts) != 1:
        raise InvalidToken("malformed token")
    return _ints(parts, 1)[0]


def _ints(parts: list[str], n: int) -> list[int]:
    try:
        return [int(p) for p in parts[:n]]
    except ValueError as exc:
        raise InvalidToken("malformed token") from exc


def parse_open(token: str) -> TrackedMessage:
    parts = unsign("open", token.removesuffix(".gif"))
    if len(parts) != 2:
        raise InvalidToken("malformed token")
    return TrackedMessage(*_ints(parts, 2))


def parse_click(token: str) -> TrackedClick:
    parts = unsign("click", token)
    if len(parts) != 3 or not parts[2].startswith(("http://", "https://")):
        raise InvalidToken("malformed token")
    ws, msg = _ints(parts, 2)
    return TrackedClick(ws, msg, parts[2])


def parse_unsubscribe(token: str) -> UnsubscribeTarget:
    parts = unsign("unsub", token)
    if len(parts) != 3:
        raise InvalidToken("malformed token")
    ws, contact, msg = _ints(parts, 3)
    return UnsubscribeTarget(ws, contact, msg or None)


def parse_test_send_unsubscribe(token: str) -> int:
    """The workspace of a test unsubscribe token; InvalidToken if forged or altered.

    Its own signing purpose, so a test token never passes as a real one or back."""
    parts = unsign("unsub-test", token)
    if len(parts) != 1:
        raise InvalidToken("malformed token")
    return _ints(parts, 1)[0]
