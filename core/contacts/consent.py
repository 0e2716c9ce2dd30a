"""Appending to the consent record (issue 17): every subscription and unsubscription adds
a row here; reading and exporting it is core.contacts.export.

Rows are written where the change happens: signup forms (core.forms), imports (set-based,
core.contacts.importing.stage), manual status changes (core.contacts.service), one-click
and the unsubscribe page (core.ingest.own), the preference centre. This module sits low
(contacts) so that all of them can append through `record`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core.infra.clock import now
from core.models import Consent

SOURCE_LABELS = {
    "form": "signup form",
    "import": "import",
    "manual": "changed by hand",
    "preferences": "preference centre",
    "one-click": "unsubscribe link",
    "api": "API",
}


def record(
    session: Session,
    workspace_id: int,
    contact_ids: Iterable[int],
    action: str,
    source: str,
    *,
    list_ids: Iterable[int] = (),
    detail: str = "",
    user_id: int | None = None,
    ip: str = "",
    user_agent: str = "",
    consent_text: str = "",
    at: datetime | None = None,
) -> int:
    """Append one consent row per contact (one INSERT); returns how many."""
    moment = at or now()
    lists = sorted({int(i) for i in list_ids})
    rows = [
        {
            "workspace_id": workspace_id,
            "contact_id": int(cid),
            "list_ids": lists,
            "action": action,
            "source": source,
            "source_detail": detail[:300],
            "user_id": user_id,
            "created_at": moment,
            "ip": ip[:64],
            "user_agent": user_agent[:500],
            "consent_text": consent_text,
        }
        for cid in contact_ids
    ]
    if rows:
        session.execute(insert(Consent), rows)
    return len(rows)
