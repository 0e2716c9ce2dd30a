"""The Settings page's "use SES's send rate": SESv2 GetAccount over real HTTP.

moto_server has no GetAccount, so a small HTTP server answers it with the body AWS
documents; boto3 reaches it through AWS_ENDPOINT_URL and signs the request as for AWS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.accounts.workspaces import adopt_ses_send_rate
from core.infra.errors import PermissionDenied, TransportMisconfigured
from core.models import AuditLog
from tests.helpers import actor_of, make_user, make_workspace

ACCOUNT = {
    "DedicatedIpAutoWarmupEnabled": False,
    "EnforcementStatus": "HEALTHY",
    "ProductionAccessEnabled": True,
    "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 40.0, "SentLast24Hours": 120.0},
    "SendingEnabled": True,
}


class _Ses(BaseHTTPRequestHandler):
    answer: tuple[int, dict] = (200, ACCOUNT)
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization", "")))
        status, body = type(self).answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status != 200:
            self.send_header("x-amzn-ErrorType", body["__type"])
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Ses]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Ses.answer, _Ses.seen = (200, ACCOUNT), []
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield _Ses
    finally:
        server.shutdown()
        server.server_close()


def test_the_workspace_takes_ses_max_send_rate(session, ses):
    ws = make_workspace(session)
    ws.max_send_rate = 1.0
    admin = actor_of(make_user(session, ws, role="admin"))
    quota = adopt_ses_send_rate(session, admin)
    assert (quota.max_send_rate, quota.max_24_hour_send, quota.sent_last_24_hours) == (
        40.0,
        50000.0,
        120.0,
    )
    assert quota.sending_enabled and quota.production_access
    assert ws.max_send_rate == 40.0
    path, authorization = ses.seen[-1]
    assert path == "/v2/email/account"
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert session.query(AuditLog).filter_by(workspace_id=ws.id).count() == 1

    viewer = actor_of(make_user(session, ws, role="viewer"))
    with pytest.raises(PermissionDenied):
        adopt_ses_send_rate(session, viewer)


def test_a_refusal_says_what_to_fix_and_changes_nothing(session, ses):
    ws = make_workspace(session)
    ws.max_send_rate = 3.0
    admin = actor_of(make_user(session, ws, role="admin"))
    ses.answer = (
        403,
        {"__type": "AccessDeniedException", "message": "not authorized to ses:GetAccount"},
    )
    with pytest.raises(TransportMisconfigured, match="ses:GetAccount"):
        adopt_ses_send_rate(session, admin)
    assert ws.max_send_rate == 3.0


def test_settings_page_button_reads_the_rate(live_db, ses, monkeypatch):
    from sqlalchemy import select

    from core.infra.config import settings
    from core.infra.db import session_scope
    from core.models import Workspace
    from tests.apptest_db import seed_user
    from tests.pages.apptest import by_label, new_app, sign_in, texts

    monkeypatch.setattr(settings, "email_transport", "ses")
    email = seed_user(role="owner")
    at = sign_in(new_app(), email)
    at.switch_page("pages/settings.py").run()
    by_label(at.button, "Use SES's max send rate").click().run()
    assert not at.exception, at.exception
    assert "Max send rate set to 40 messages a second" in texts(at)
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        assert ws.max_send_rate == 40.0
