"""Settings: the workspace's time zone (issue 18), which automations' date triggers and
until_time waits use; owners and admins change it, others only see it."""

from __future__ import annotations

import pytest

from core.accounts import auth
from core.accounts.workspaces import SendingIdentity, update_sending_identity
from core.infra.db import session_scope
from core.infra.errors import ValidationFailed
from core.models import Workspace
from tests.apptest_db import seed_user
from tests.pages.apptest import by_label, new_app, sign_in


def _zone(email: str) -> str:
    with session_scope() as session:
        user = auth.get_user_by_email(session, email)
        return session.get(Workspace, user.workspace_id).timezone


def test_an_owner_sets_the_time_zone_and_a_viewer_cannot(live_db):
    owner = seed_user()
    assert _zone(owner) == "UTC"
    at = sign_in(new_app(), owner)
    at.switch_page("pages/settings.py").run()
    assert not at.exception, at.exception
    zone = by_label(at.selectbox, "Time zone")
    assert zone.value == "UTC" and "Europe/Berlin" in zone.options
    zone.set_value("Europe/Berlin")
    by_label(at.button, "Save").click().run()
    assert not at.exception, at.exception
    assert _zone(owner) == "Europe/Berlin"
    assert by_label(at.selectbox, "Time zone").value == "Europe/Berlin"

    viewer = seed_user(role="viewer", slug="acme")
    at = sign_in(new_app(), viewer)
    at.switch_page("pages/settings.py").run()
    assert by_label(at.selectbox, "Time zone").value == "Europe/Berlin"
    assert by_label(at.button, "Save").disabled


def test_an_unknown_time_zone_is_refused(live_db):
    owner = seed_user()
    with session_scope() as session:
        actor = auth.actor_for(auth.get_user_by_email(session, owner))
        identity = SendingIdentity("Acme", "", "", "", "", 10.0, "", "own", "Mars/Base")
        with pytest.raises(ValidationFailed, match="not a time zone"):
            update_sending_identity(session, actor, identity)
