"""The shared Streamlit server of `live_app` (tests/browser/conftest.py): the next test gets
the same server, but none of what the test before it left behind.

Both turns run in one xdist worker (one xdist group), in either order."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.infra.db import session_scope
from core.models import Contact, User, Workspace
from tests.helpers import make_contact
from tests.processes import http_ok

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("shared-streamlit-server")]

_seen: dict[str, str] = {}


def _counts() -> tuple[int, int, int]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(Workspace)),
            s.scalar(select(func.count()).select_from(User)),
            s.scalar(select(func.count()).select_from(Contact)),
        )


@pytest.mark.parametrize("turn", ["one", "two"])
def test_each_test_gets_the_shared_server_with_nothing_left_behind(live_app, turn):
    """Whichever turn runs second starts from what the first one left behind."""
    assert _counts() == (1, 1, 0)
    assert not live_app.outbox.exists() or not any(live_app.outbox.iterdir())
    assert not (live_app.data_dir / "exports").exists()
    with session_scope() as s:
        # Ids start again at 1, as on a new database.
        assert s.scalars(select(Workspace.id)).one() == 1
    if _seen:
        assert live_app.url == _seen["url"]  # the same server, not a new one
    assert http_ok(f"{live_app.url}/_stcore/health")

    # Left behind for the other turn.
    with session_scope() as s:
        make_contact(s, s.scalars(select(Workspace)).one(), email=f"left-{turn}@example.com")
    live_app.outbox.mkdir(parents=True, exist_ok=True)
    (live_app.outbox / f"left-{turn}.eml").write_text("Subject: left behind\n\n")
    (live_app.data_dir / "exports").mkdir()
    assert _counts() == (1, 1, 1)
    _seen["url"] = live_app.url
