"""Sign-in, lockout, sign-out and the password-reset pages, through app.py."""

from __future__ import annotations

import re
from datetime import timedelta

from core.infra import clock
from core.infra.db import session_scope
from tests.apptest_db import seed_user
from tests.helpers import message_text, outbox_messages
from tests.pages.apptest import by_label, new_app, sign_in, texts

GENERIC = "Wrong email or password"


def test_sign_in_and_sign_out(live_db):
    email = seed_user()
    at = sign_in(new_app(), email)
    assert not at.exception
    assert "Dashboard" in texts(at)
    by_label(at.button, "Sign out").click()
    at.run()
    assert by_label(at.text_input, "Email")


def test_wrong_password_and_unknown_user_look_the_same(live_db):
    email = seed_user()
    at = sign_in(new_app(), email, "wrong-password-1")
    first = [e.value for e in at.error]
    at = sign_in(new_app(), "nobody@example.com", "wrong-password-1")
    assert first == [e.value for e in at.error]
    assert GENERIC in first[0]


def test_lockout_then_unlock_with_the_clock(live_db):
    email = seed_user()
    start = clock.now()
    clock.freeze(start)
    for _ in range(5):
        at = sign_in(new_app(), email, "wrong-password-1")
        assert GENERIC in texts(at)
    at = sign_in(new_app(), email)
    assert GENERIC in texts(at), "the right password must fail while locked"
    clock.freeze(start + timedelta(minutes=16))
    at = sign_in(new_app(), email)
    assert "Dashboard" in texts(at)


def _reset_token(outbox) -> str:
    return re.search(r"token=([\w-]+)", message_text(outbox_messages(outbox)[-1])).group(1)


def _run_reset_tasks(enqueued, outbox) -> None:
    """The worker's part: the page mailed nothing itself, it queued one task."""
    from worker.tasks import password_reset

    assert not (outbox / "new").exists() or not list((outbox / "new").iterdir())
    assert [name for name, _, _ in enqueued] == ["worker.tasks.password_reset"]
    while enqueued:
        _, args, _ = enqueued.pop(0)
        password_reset(*args)


def test_reset_flow(live_db, outbox, enqueued):
    email = seed_user()
    at = new_app()
    at.run()
    at.switch_page("pages/forgot_password.py").run()
    by_label(at.text_input, "Your email").input(email)
    by_label(at.button, "Send me a reset link").click()
    at.run()
    assert "If an account uses that address" in texts(at)
    _run_reset_tasks(enqueued, outbox)
    token = _reset_token(outbox)

    at = new_app()
    at.query_params["token"] = token
    at.run()
    at.switch_page("pages/reset_password.py").run()
    by_label(at.text_input, "New password").input("fresh-password-77")
    by_label(at.text_input, "New password again").input("fresh-password-77")
    by_label(at.button, "Set password").click()
    at.run()
    assert "Your password is set" in texts(at)
    assert "Dashboard" in texts(sign_in(new_app(), email, "fresh-password-77"))

    # The token is single use.
    at = new_app()
    at.query_params["token"] = token
    at.run()
    at.switch_page("pages/reset_password.py").run()
    assert "not valid or was already used" in texts(at)


def test_expired_reset_token_refused(live_db, outbox):
    from core.accounts.auth import request_password_reset

    email = seed_user()
    with session_scope() as session:
        request_password_reset(session, email)
    clock.advance(timedelta(hours=2))
    at = new_app()
    at.query_params["token"] = _reset_token(outbox)
    at.run()
    at.switch_page("pages/reset_password.py").run()
    assert "expired" in texts(at)


def test_unknown_address_gets_the_same_answer(live_db, outbox, enqueued):
    """Same words, and the same work on the page (one queued task), for any address."""
    at = new_app()
    at.run()
    at.switch_page("pages/forgot_password.py").run()
    by_label(at.text_input, "Your email").input("ghost@example.com")
    by_label(at.button, "Send me a reset link").click()
    at.run()
    assert "If an account uses that address" in texts(at)
    _run_reset_tasks(enqueued, outbox)
    assert not (outbox / "new").exists() or not list((outbox / "new").iterdir())
